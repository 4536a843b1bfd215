"""The currencies Money may be in: the ISO 4217 codes, as a frozen list the domain owns.

Why a copy rather than `pycountry` at run time: the domain imports only the standard library
(and `eventsourcing.domain`), and every `Money`, whichever layer makes it, must refuse a code
such as `ZZZ`; a check at the application's edge alone would let other paths through (sagas,
the demo, the benchmarks' seeding). The copy is generated from `pycountry` (ISO 4217 as
Debian's iso-codes maintains it), and `tests/unit/domain/test_currencies.py` fails as soon as
the installed `pycountry` disagrees, so it cannot drift silently; that test also prints the
text to paste here.

When ISO withdraws a code that stored events hold, keep it (the test has an allowance for it):
a replayed `Money` must still load.
"""

from __future__ import annotations

ISO_4217_SOURCE = "pycountry 26.2.16"
"""Where `ISO_4217_CODES` was generated from."""

_CODES = """
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN BWP
BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK
JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP
PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP
SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV
WST XAD XAF XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR
ZMW ZWG
"""
ISO_4217_CODES: frozenset[str] = frozenset(_CODES.split())
