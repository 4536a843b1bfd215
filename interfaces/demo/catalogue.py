"""What a music marketplace's catalogue looks like: artists, buyers, titles, tags and prices.

Every function draws from the `random.Random` it is given and from nothing else, so a plan made
from the same seed names the same things. Prices are minor units, ending in 99 where shops do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from domain.product import ProductKind

ARTIST_FIRST = (
    "Kid", "Lady", "Velvet", "Neon", "Saint", "Little", "Big", "Lo", "Young", "Mister",
    "Sister", "Captain", "Golden", "Silver", "Midnight",
)  # fmt: skip
ARTIST_SECOND = (
    "Lantern", "Static", "Moth", "Harbor", "Fox", "Echo", "Pixel", "Comet", "Rivers", "Nova",
    "Tape", "Orchid", "Cassette", "Atlas", "Juniper",
)  # fmt: skip
BUYER_FIRST = (
    "Ada", "Noor", "Kenji", "Lucía", "Tomás", "Amara", "Jonas", "Priya", "Mateo", "Sven",
    "Chloé", "Yusuf", "Ines", "Olu", "Mei", "Hana", "Leo", "Zara", "Ravi", "Elif",
)  # fmt: skip

TITLE_ADJECTIVES = (
    "Midnight", "Neon", "Velvet", "Golden", "Paper", "Silent", "Electric", "Lunar", "Crystal",
    "Broken", "Faded", "Hidden", "Slow", "Endless", "Northern", "Tidal", "Amber", "Glass",
    "Concrete", "Violet",
)  # fmt: skip
TITLE_NOUNS = (
    "Drive", "Rain", "Echoes", "Horizon", "Skyline", "Tides", "Summer", "Static", "Garden",
    "Signals", "Waves", "Motion", "Memory", "Lights", "Harbor", "Circuit", "Fever", "Bloom",
    "Orbit", "Avenue",
)  # fmt: skip
GENRES = (
    "lofi", "house", "techno", "ambient", "hip-hop", "drum-and-bass", "synthwave", "trap",
    "jazz", "cinematic", "afrobeat", "dubstep",
)  # fmt: skip
MOODS = ("chill", "dark", "uplifting", "melancholic", "energetic", "dreamy")
KEYS = ("C minor", "A minor", "F major", "G minor", "D minor", "E major", "B flat major")
SAMPLE_ADJECTIVES = ("Dusty", "Crisp", "Analog", "Warm", "Gritty", "Lush", "Punchy", "Vintage")
SAMPLE_THINGS = (
    "Drums", "Drum Breaks", "Vocal Chops", "Bass One-Shots", "Synth Loops", "Foley Textures",
    "Guitar Loops", "808s", "Percussion", "Pads",
)  # fmt: skip
LICENCES = (
    ("Basic lease", 2_999, "MP3, up to 5,000 streams"),
    ("Premium lease", 4_999, "WAV, up to 50,000 streams"),
    ("Unlimited lease", 9_999, "WAV and stems, unlimited streams"),
    ("Sync licence", 14_999, "for film, games and adverts"),
    ("Exclusive licence", 29_900, "full rights; the beat is taken off the store"),
)
OTHER_THINGS = (
    "Serum preset bank", "Vital preset bank", "MIDI chord pack", "Mixing template",
    "Ableton project file",
)  # fmt: skip
TRACK_PRICES = (99, 129, 149, 199, 249)
SAMPLE_PACK_PRICES = (999, 1_499, 1_999, 2_499, 2_999, 3_999, 4_999)
OTHER_PRICES = (499, 799, 999, 1_499, 1_999)

KIND_WEIGHTS = {
    ProductKind.TRACK: 45,
    ProductKind.SAMPLE_PACK: 30,
    ProductKind.LICENCE: 15,
    ProductKind.OTHER: 10,
}

PAYMENT_FAILURES = (
    "card declined",
    "insufficient funds",
    "3-D Secure authentication failed",
    "card expired",
)
CANCELLATIONS = (
    "changed my mind",
    "found it cheaper elsewhere",
    "ordered the wrong licence",
    "took too long to pay",
)
DISPUTES = (
    "the download link did not work",
    "the files are not as described",
    "the stems are missing",
    "I was charged twice",
)


@dataclass(frozen=True)
class Listing:
    """A product as its creator lists it."""

    kind: ProductKind
    title: str
    description: str
    tags: tuple[str, ...]
    price: int
    """In minor units of the seller's currency."""


def artist_name(rng: random.Random) -> str:
    return f"{rng.choice(ARTIST_FIRST)} {rng.choice(ARTIST_SECOND)}"


def buyer_name(rng: random.Random) -> str:
    return f"{rng.choice(BUYER_FIRST)} {chr(ord('A') + rng.randrange(26))}."


def listing(rng: random.Random) -> Listing:
    """A product of a kind drawn by `KIND_WEIGHTS`, with a title, tags and price to match."""
    [kind] = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))
    genre, mood = rng.choice(GENRES), rng.choice(MOODS)
    track = f"{rng.choice(TITLE_ADJECTIVES)} {rng.choice(TITLE_NOUNS)}"
    bpm, key = rng.randrange(70, 175), rng.choice(KEYS)
    if kind is ProductKind.TRACK:
        return Listing(
            kind,
            track,
            f"{_a(mood)} {genre} track at {bpm} BPM in {key}. Mixed and mastered; WAV and MP3.",
            (genre, mood, "track"),
            rng.choice(TRACK_PRICES),
        )
    if kind is ProductKind.SAMPLE_PACK:
        thing = rng.choice(SAMPLE_THINGS)
        count = rng.randrange(40, 400, 10)
        return Listing(
            kind,
            f"{rng.choice(SAMPLE_ADJECTIVES)} {genre.title()} {thing} Vol. {rng.randrange(1, 6)}",
            f"{count} royalty-free {genre} samples ({thing.lower()}): loops and one-shots "
            f"at {bpm} BPM, 24-bit WAV.",
            (genre, "samples", thing.lower()),
            rng.choice(SAMPLE_PACK_PRICES),
        )
    if kind is ProductKind.LICENCE:
        name, price, terms = rng.choice(LICENCES)
        return Listing(
            kind,
            f"{name}: {track}",
            f"{_a(name.lower())} for the {mood} {genre} beat '{track}' ({bpm} BPM, {key}): "
            f"{terms}.",
            (genre, "beat", "licence"),
            price,
        )
    thing = rng.choice(OTHER_THINGS)
    return Listing(
        kind,
        f"{thing}: {track}",
        f"{_a(thing.lower())} for {mood} {genre} productions, made for '{track}'.",
        (genre, "sound-design", mood),
        rng.choice(OTHER_PRICES),
    )


def _a(phrase: str) -> str:
    """The phrase with its indefinite article, capitalised (`An energetic`, `A dark`)."""
    return f"{'An' if phrase[:1] in 'aeiou' else 'A'} {phrase}"
