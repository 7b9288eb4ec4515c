-- Bursar admission, key layout v1: settle (or release) one reservation.
--
-- KEYS[1] open reservations (as in reserve.lua), KEYS[2..] the scope hashes the reservation
-- holds, in its order.
-- ARGV[1] now (ms)   ARGV[2] rate window (ms)   ARGV[3] reservation id
-- ARGV[4] actual cost (nano-USD, decimal string)   ARGV[5] actual tokens
-- ARGV[6] scope hash TTL (ms), then per scope: cost held, tokens held.
--
-- No TTL is renewed here: the reservation renewed it when it was made, and a scope hash
-- outlives at least two reservation lifetimes.

local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost_s = ARGV[4]
local tokens = tonumber(ARGV[5])
local exact = 2 ^ 52

-- The reservation's member in the open set, built as reserve.lua built it. Only a
-- reservation still open gives its hold back: an expired one was released already.
local parts = {ARGV[3], ' '}
for i = 2, #KEYS do
  local a = 6 + (i - 2) * 2
  parts[#parts + 1] = #KEYS[i] .. ':' .. KEYS[i] .. '=' .. ARGV[a + 1] .. '/' .. ARGV[a + 2] .. ';'
end
local still_open = redis.call('ZREM', KEYS[1], table.concat(parts)) == 1

for i = 2, #KEYS do
  local key = KEYS[i]
  local a = 6 + (i - 2) * 2
  local f = redis.call('HMGET', key, 'seeded', 'ws', 'tok', 'tokr', 'infl', 'pend', 'pnext',
    'resv')
  -- Every stored scope has `seeded`; one that expired meanwhile is seeded again from the
  -- store, which the ledger brings up to date.
  if f[1] then
    local ws, tok = tonumber(f[2]) or 0, tonumber(f[3]) or 0
    local tokr, infl = tonumber(f[4]) or 0, tonumber(f[5]) or 0
    local pend, pnext = tonumber(f[6]) or 0, tonumber(f[7]) or 0
    local out = {}
    if still_open then
      local c = ARGV[a + 1]
      if c ~= '0' then
        local resv, held = tonumber(f[8]) or 0, tonumber(c)
        if math.abs(resv) < exact and math.abs(held) < exact then
          out[#out + 1] = 'resv'; out[#out + 1] = string.format('%d', math.max(0, resv - held))
        elseif redis.call('HINCRBY', key, 'resv', '-' .. c) < 0 then
          out[#out + 1] = 'resv'; out[#out + 1] = 0
        end
      end
      out[#out + 1] = 'tokr'; out[#out + 1] = math.max(0, tokr - tonumber(ARGV[a + 2]))
      out[#out + 1] = 'infl'; out[#out + 1] = math.max(0, infl - 1)
    end
    if now >= ws + window then
      tok = 0
      out[#out + 1] = 'ws'; out[#out + 1] = now
      out[#out + 1] = 'req'; out[#out + 1] = 0
    end
    local reset = pend ~= 0 and pend <= now
    if reset then
      -- The budget period ended: start the next one. When its end is not known yet, the
      -- next reservation learns it from the store.
      if pnext > now then pend = pnext else pend = 0 end
      out[#out + 1] = 'spent'; out[#out + 1] = cost_s
      out[#out + 1] = 'pend'; out[#out + 1] = pend
      out[#out + 1] = 'pnext'; out[#out + 1] = 0
    end
    redis.call('HSET', key, 'tok', tok + tokens, unpack(out))
    if not reset and cost_s ~= '0' then redis.call('HINCRBY', key, 'spent', cost_s) end
  end
end
return 1
