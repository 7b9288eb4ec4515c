-- Bursar admission, key layout v1: reserve one request on every scope, or on none.
--
-- KEYS[1] open reservations (sorted set scored by deadline; each member is the reservation
--   id and what it holds, see `member` below)
-- KEYS[2] reservation id sequence
-- KEYS[3] epoch: when this layout's keys were first written (lost with them, so a Redis
--   that forgot its counters finds it missing)
-- KEYS[4..] one hash per scope (fields below), each named once
-- ARGV[1] now (ms)            ARGV[2] rate window (ms)      ARGV[3] reservation TTL (ms)
-- ARGV[4] demand cost (nano-USD, decimal string)            ARGV[5] demand tokens
-- ARGV[6] scope hash TTL (ms)      ARGV[7] 1 = hold at most what remains of each budget
--   (LiteLLM's rule: refuse only once spend and holds reach it), 0 = the whole cost must fit
-- ARGV[8] how long after the epoch counters count as just lost (ms)
-- then 10 values per scope: rpm, tpm, max_parallel (-1 = none), has_budget (0/1),
--   max_budget, store_spent (decimal strings), store_reset_at (0 = no period),
--   period_end_now (end of the period containing now, 0 = none), period_after (the end after
--   it), exact (1 = store_spent was read from the store just now and may seed the scope)
--
-- A budget scope with no counters yet is seeded only from an exact figure: without one the
-- script changes nothing and answers {2, lost (0/1), scope indices...}, and the caller reads
-- those scopes' spend from the store (after letting the ledgers flush when `lost`) and
-- calls again.
--
-- Scope hash fields: ws (window start), req, tok (settled tokens this window),
-- tokr (tokens held by open reservations), infl (in flight), spent, resv (cost held),
-- pend (end of the period `spent` belongs to, 0 = none), pnext (the end after pend, 0 =
-- unknown), seeded, reseed.
--
-- Money stays a decimal string whenever it is stored: Lua numbers are doubles, and Redis
-- formats them with 14 significant digits. Spend changes through HINCRBY (exact 64-bit); a
-- hold is added in Lua only while both figures are below 2^52 (formatted with %d), else
-- through HINCRBY too. Comparisons use doubles, exact below 2^53 nano-USD (about 9 million
-- USD).

local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local cost_s = ARGV[4]
local cost = tonumber(cost_s)
local tokens = tonumber(ARGV[5])
local keep = tonumber(ARGV[6])
local up_to_remaining = ARGV[7] == '1'
local loss_window = tonumber(ARGV[8])
local open, seq = KEYS[1], KEYS[2]
local epoch = tonumber(redis.call('GET', KEYS[3]))
if not epoch then
  epoch = now
  redis.call('SET', KEYS[3], now)
end

-- An open reservation's sorted-set member: its id, then per scope the key (length-prefixed,
-- since ids may hold any byte), the cost and the tokens it holds. settle.lua builds the same
-- string from its arguments to remove it.
local function member(id, list)
  local parts = {id, ' '}
  for i = 1, #list, 3 do
    parts[#parts + 1] = #list[i] .. ':' .. list[i] .. '=' .. list[i + 1] .. '/' .. list[i + 2] .. ';'
  end
  return table.concat(parts)
end

local function give_back(key, c, t)
  if redis.call('EXISTS', key) == 0 then return end
  -- ("-0" is not an integer to Redis, so zero holds are skipped rather than negated.)
  if c ~= '0' and redis.call('HINCRBY', key, 'resv', '-' .. c) < 0 then
    redis.call('HSET', key, 'resv', 0)
  end
  if t ~= 0 and redis.call('HINCRBY', key, 'tokr', -t) < 0 then
    redis.call('HSET', key, 'tokr', 0)
  end
  if redis.call('HINCRBY', key, 'infl', -1) < 0 then redis.call('HSET', key, 'infl', 0) end
end

-- Release reservations past their deadline (a bounded batch per call). Every key shares the
-- layout's hash tag, so touching the scopes they name is safe on a cluster too.
local expired = redis.call('ZRANGEBYSCORE', open, '-inf', now, 'LIMIT', 0, 64)
for _, m in ipairs(expired) do
  local at = string.find(m, ' ', 1, true) + 1
  while at <= #m do
    local colon = string.find(m, ':', at, true)
    local len = tonumber(string.sub(m, at, colon - 1))
    local key = string.sub(m, colon + 1, colon + len)
    local _, stop, c, t = string.find(m, '^=(%-?%d+)/(%d+);', colon + len + 1)
    give_back(key, c, tonumber(t))
    at = stop + 1
  end
  redis.call('ZREM', open, m)
end

local n = #KEYS - 3
local scopes = {}
local unseeded = {}
for i = 1, n do
  local a = 8 + (i - 1) * 10
  local key = KEYS[3 + i]
  local f = redis.call('HMGET', key, 'ws', 'req', 'tok', 'tokr', 'infl', 'spent', 'resv',
    'pend', 'pnext', 'seeded', 'reseed')
  local s = {
    key = key,
    rpm = tonumber(ARGV[a + 1]), tpm = tonumber(ARGV[a + 2]), par = tonumber(ARGV[a + 3]),
    budget = ARGV[a + 4] == '1', max = tonumber(ARGV[a + 5]),
    ws = tonumber(f[1]) or 0, req = tonumber(f[2]) or 0, tok = tonumber(f[3]) or 0,
    tokr = tonumber(f[4]) or 0, infl = tonumber(f[5]) or 0,
    spent_s = f[6] or '0', resv_s = f[7] or '0', resv = tonumber(f[7]) or 0,
    pend = tonumber(f[8]) or 0, pnext = tonumber(f[9]) or 0,
    seeded = f[10] == '1', reseed = f[11] == '1',
  }
  -- The rate window opens at the first request and lasts `window`. A hash's lifetime
  -- (far longer than a window) is renewed when its window opens, so at most once a window.
  if now >= s.ws + window then s.ws = now; s.req = 0; s.tok = 0; s.renew = true end
  s.reseeded = not s.seeded or s.reseed
  if s.budget and not s.seeded and ARGV[a + 10] ~= '1' then
    unseeded[#unseeded + 1] = i
  end
  local old_spent, old_pend, old_pnext = s.spent_s, s.pend, s.pnext
  if s.budget then
    local store_s, store_end = ARGV[a + 6], tonumber(ARGV[a + 7])
    local end_now, after = tonumber(ARGV[a + 8]), ARGV[a + 9]
    -- A store figure from a period that already ended counts as nothing.
    if store_end ~= 0 and store_end <= now then store_s = '0' end
    if not s.seeded or s.reseed then
      s.spent_s = store_s; s.pend = end_now; s.pnext = tonumber(after)
    else
      if s.pend ~= 0 and s.pend <= now then
        s.spent_s = '0'; s.pend = end_now; s.pnext = tonumber(after)
      end
      if s.pend == end_now or s.pend == 0 or end_now == 0 then
        -- Same period (or one side has none): the store lags settlements made here, so
        -- the larger figure wins.
        s.pend = end_now; s.pnext = tonumber(after)
        if tonumber(store_s) > tonumber(s.spent_s) then s.spent_s = store_s end
      elseif end_now > s.pend then
        -- The store moved on to a later period (reset elsewhere): follow it.
        s.spent_s = store_s; s.pend = end_now; s.pnext = tonumber(after)
      end
    end
    s.spent = tonumber(s.spent_s)
    s.period_changed = s.reseeded or s.spent_s ~= old_spent or s.pend ~= old_pend
      or s.pnext ~= old_pnext
  end
  scopes[i] = s
end

if #unseeded > 0 then
  local lost = (now - epoch < loss_window) and 1 or 0
  local out = {2, lost}
  for _, i in ipairs(unseeded) do out[#out + 1] = i end
  return out
end

-- Stores what refreshing changed (window, period, the store's figure) plus `extra` fields,
-- in one HSET of the changed fields only (none: no call at all).
local function store(s, extra)
  local f = {}
  if s.renew then
    f[#f + 1] = 'ws'; f[#f + 1] = s.ws
    f[#f + 1] = 'req'; f[#f + 1] = s.req
    f[#f + 1] = 'tok'; f[#f + 1] = s.tok
  end
  if s.reseeded then
    f[#f + 1] = 'seeded'; f[#f + 1] = 1
    f[#f + 1] = 'reseed'; f[#f + 1] = 0
  end
  if s.period_changed then
    f[#f + 1] = 'spent'; f[#f + 1] = s.spent_s
    f[#f + 1] = 'pend'; f[#f + 1] = s.pend
    f[#f + 1] = 'pnext'; f[#f + 1] = s.pnext
  end
  for _, v in ipairs(extra) do f[#f + 1] = v end
  if #f > 0 then redis.call('HSET', s.key, unpack(f)) end
  if s.renew then redis.call('PEXPIRE', s.key, keep) end
end

-- Check every scope before taking anything: a refusal consumes nothing.
for i, s in ipairs(scopes) do
  local refusal
  local over = false
  if s.budget and cost > 0 then
    if up_to_remaining then over = s.spent + s.resv >= s.max
    else over = s.spent + s.resv + cost > s.max end
  end
  if over then
    refusal = {0, i, 1, s.spent_s, s.resv_s}
  elseif s.rpm >= 0 and s.req + 1 > s.rpm then
    refusal = {0, i, 2, s.req, s.ws}
  elseif s.tpm >= 0 and s.tok + s.tokr + tokens > s.tpm then
    refusal = {0, i, 3, s.tok + s.tokr, s.ws}
  elseif s.par >= 0 and s.infl + 1 > s.par then
    refusal = {0, i, 4, s.infl, s.ws}
  end
  if refusal then
    for j = 1, i do store(scopes[j], {}) end
    return refusal
  end
end

local id = redis.call('INCR', seq)
local deadline = now + ttl
local list = {}
local out = {1, id, deadline}
local exact = 2 ^ 52
for _, s in ipairs(scopes) do
  local taken = s.budget and cost_s or '0'
  local held = cost
  if s.budget and up_to_remaining and cost > 0 and s.spent + s.resv + cost > s.max then
    -- Hold what remains (below 2^53 here: the comparison above is exact only there).
    held = s.max - s.spent - s.resv
    taken = string.format('%d', held)
  end
  s.req = s.req + 1
  local fields = {'req', s.req, 'tokr', s.tokr + tokens, 'infl', s.infl + 1}
  local by_incr = false
  if taken ~= '0' then
    if math.abs(s.resv) < exact and math.abs(held) < exact then
      fields[#fields + 1] = 'resv'; fields[#fields + 1] = string.format('%d', s.resv + held)
    else
      by_incr = true
    end
  end
  store(s, fields)
  if by_incr then redis.call('HINCRBY', s.key, 'resv', taken) end
  list[#list + 1] = s.key
  list[#list + 1] = taken
  list[#list + 1] = ARGV[5]
  out[#out + 1] = s.req
  out[#out + 1] = s.tok + s.tokr + tokens
  out[#out + 1] = s.ws
  out[#out + 1] = taken
end
redis.call('ZADD', open, deadline, member(id, list))
return out
