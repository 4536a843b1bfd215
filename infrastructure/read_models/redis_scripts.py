"""The Lua scripts of the Redis document sink (see `redis_documents` for the key layout).

Every step that reads and then writes runs as one script, so Redis executes it atomically: no
other client's command runs between the check and the write.

Why `apply` does not simply `cjson.decode` a document, merge it and `cjson.encode` it: the cjson
of Redis 7.0 encodes numbers with at most 14 significant digits (a position near 2^50 would come
back as 1.1258999068426e+15, a price 0.1 + 0.2 rounded) and has no array metatable, so an empty
list would come back as `{}`. Field values therefore never pass through cjson: Python sends each
one as its JSON text, the script keeps that text as it is, and writes the document itself
(`dump`). cjson only decodes what is safe to decode (strings, and integers below 2^53, which a
double holds exactly) and encodes strings. Every number the script writes is an integer, written
with `%d`, which is exact.

A script that fails part-way keeps the writes it has already made (Redis has no rollback), so
`apply` reads and merges everything first and writes only once nothing can fail any more.
Errors meant for the caller are raised as `{err = 'MERCATO_<CODE> detail'}`.
"""

from __future__ import annotations

_REQUIRE_TARGET = r"""
-- A target exists from create_target until drop_target has removed it; a target being dropped
-- takes no more writes and cannot be promoted.
local function require_target(checkpoints)
  local state = redis.call('HMGET', checkpoints, '~complete', '~dropping')
  if not state[1] or state[2] then error({err = 'MERCATO_NO_TARGET'}) end
end
"""

CREATE_TARGET = r"""
-- KEYS: checkpoints, routing, targets. ARGV: target.
if redis.call('HEXISTS', KEYS[1], '~dropping') == 1 then error({err = 'MERCATO_DROPPING'}) end
redis.call('HSETNX', KEYS[1], '~base', '0')
redis.call('HSETNX', KEYS[1], '~complete', '0')
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[2], 'building', ARGV[1])
"""

PROMOTE = (
    _REQUIRE_TARGET
    + r"""
-- KEYS: checkpoints, routing. ARGV: target. Readers follow `live`: one hash, one flip.
require_target(KEYS[1])
redis.call('HSET', KEYS[2], 'live', ARGV[1])
redis.call('HDEL', KEYS[2], 'building')
"""
)

SET_BASE = (
    _REQUIRE_TARGET
    + r"""
-- KEYS: checkpoints. ARGV: base, complete ('1' or '0').
require_target(KEYS[1])
redis.call('HSET', KEYS[1], '~base', ARGV[1], '~complete', ARGV[2])
"""
)

BEGIN_DROP = r"""
-- KEYS: checkpoints, routing. ARGV: target. Marks the target as being dropped: it stays listed
-- (so its name is not handed out again) until every key of it is gone.
if redis.call('HGET', KEYS[2], 'live') == ARGV[1] then error({err = 'MERCATO_LIVE'}) end
if redis.call('HGET', KEYS[2], 'building') == ARGV[1] then
  redis.call('HDEL', KEYS[2], 'building')
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], '~dropping', '1') end
"""

APPLY = (
    _REQUIRE_TARGET
    + r"""
-- KEYS: checkpoints, then the key of every document written. ARGV: the writes as JSON, then
-- (partition, position) pairs. A write is {d = index into KEYS, p = position, t = tenant} and
-- either f = {field name = the value's JSON text} (SetFields) or c, s, a = counter, source and
-- amount (Contribute). The merge is application.read_models.documents.merge, write for write.

local function integer(n) return string.format('%d', n) end

local function skip_space(s, i) return string.find(s, '[^ \t\r\n]', i) or #s + 1 end

-- s[i] opens a JSON string: the index just past its closing quote.
local function string_end(s, i)
  local j = i + 1
  while true do
    local k = string.find(s, '["\\]', j)
    if not k then error('unterminated JSON string in a stored document') end
    if string.byte(s, k) == 34 then return k + 1 end
    j = k + 2
  end
end

-- The index just past the JSON value that starts at s[i].
local function value_end(s, i)
  local first = string.byte(s, i)
  if first == 34 then return string_end(s, i) end
  if first ~= 123 and first ~= 91 then return string.find(s, '[,}%]%s]', i) or #s + 1 end
  local depth, j = 0, i
  repeat
    local k = string.find(s, '[{}%[%]"]', j)
    if not k then error('unbalanced JSON in a stored document') end
    local c = string.byte(s, k)
    if c == 34 then
      j = string_end(s, k)
    else
      depth = depth + ((c == 123 or c == 91) and 1 or -1)
      j = k + 1
    end
  until depth == 0
  return j
end

-- A JSON object's members: name -> the exact JSON text of the value.
local function members(s)
  local found = {}
  local i = skip_space(s, 1)
  if string.byte(s, i) ~= 123 then error('a stored document is not a JSON object') end
  i = skip_space(s, i + 1)
  if string.byte(s, i) == 125 then return found end
  while true do
    local name_end = string_end(s, i)
    local start = skip_space(s, skip_space(s, name_end) + 1)
    local stop = value_end(s, start)
    found[cjson.decode(string.sub(s, i, name_end - 1))] = string.sub(s, start, stop - 1)
    i = skip_space(s, stop)
    if string.byte(s, i) == 125 then return found end
    i = skip_space(s, i + 1)
  end
end

-- Members (name -> JSON text) as a JSON object, names sorted: equal documents give equal text.
local function object(values)
  local names = {}
  for name in pairs(values) do names[#names + 1] = name end
  table.sort(names)
  for n, name in ipairs(names) do names[n] = cjson.encode(name) .. ':' .. values[name] end
  return '{' .. table.concat(names, ',') .. '}'
end

local function load(text)
  if not text then return {tenant = '', fields = {}, positions = {}, contributions = {}} end
  local top = members(text)
  return {
    tenant = cjson.decode(top.tenant),
    fields = members(top.fields),
    positions = cjson.decode(top.positions),
    contributions = cjson.decode(top.contributions),
  }
end

local function dump(doc)
  local positions, contributions = {}, {}
  for name, position in pairs(doc.positions) do positions[name] = integer(position) end
  for counter, sources in pairs(doc.contributions) do
    local shares = {}
    for source, share in pairs(sources) do
      shares[source] = '[' .. integer(share[1]) .. ',' .. integer(share[2]) .. ']'
    end
    contributions[counter] = object(shares)
  end
  return '{"tenant":' .. cjson.encode(doc.tenant) .. ',"fields":' .. object(doc.fields)
    .. ',"positions":' .. object(positions) .. ',"contributions":' .. object(contributions) .. '}'
end

local function merge(doc, write)
  if doc.tenant == '' then doc.tenant = write.t end
  if write.f then
    for name, value in pairs(write.f) do
      if write.p >= (doc.positions[name] or 0) then
        doc.fields[name] = value
        doc.positions[name] = write.p
      end
    end
    return
  end
  local sources = doc.contributions[write.c] or {}
  doc.contributions[write.c] = sources
  local share = sources[write.s] or {0, 0}
  if write.p < share[2] then return end
  sources[write.s] = {write.a, write.p}
  if write.a ~= share[1] or not doc.fields[write.c] then
    local total = tonumber(doc.fields[write.c] or '0')
    if not total then
      error({err = 'MERCATO_BAD_WRITE counter ' .. write.c .. ' holds ' .. doc.fields[write.c]})
    end
    doc.fields[write.c] = integer(total + write.a - share[1])
  end
end

require_target(KEYS[1])
local stored, documents = {}, {}
for k = 2, #KEYS do
  stored[k] = redis.call('GET', KEYS[k])
  documents[k] = load(stored[k])
end
for _, write in ipairs(cjson.decode(ARGV[1])) do merge(documents[write.d], write) end
-- Nothing below can fail: from here on, every write of the batch lands.
for k = 2, #KEYS do
  local text = dump(documents[k])
  if text ~= stored[k] then redis.call('SET', KEYS[k], text) end
end
for i = 2, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
"""
)
