-- Bursar admission, key layout v1: settle (or release) one reservation.
--
-- KEYS[1] open reservations, KEYS[2] held amounts (as in reserve.lua), KEYS[3..] the scope
-- hashes the reservation holds, in its order.
-- ARGV[1] now (ms)   ARGV[2] rate window (ms)   ARGV[3] reservation id
-- ARGV[4] actual cost (nano-USD, decimal string)   ARGV[5] actual tokens
-- ARGV[6] scope hash TTL (ms), then per scope: cost held, tokens held.

local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local id = ARGV[3]
local cost_s = ARGV[4]
local tokens = tonumber(ARGV[5])
local keep = tonumber(ARGV[6])
local open, held = KEYS[1], KEYS[2]

-- Only a reservation still open gives its hold back: an expired one was released already.
local still_open = redis.call('ZREM', open, id) == 1
if still_open then redis.call('HDEL', held, id) end

for i = 3, #KEYS do
  local key = KEYS[i]
  local a = 6 + (i - 3) * 2
  if redis.call('EXISTS', key) == 1 then
    if still_open then
      local c = ARGV[a + 1]
      if c ~= '0' and redis.call('HINCRBY', key, 'resv', '-' .. c) < 0 then
        redis.call('HSET', key, 'resv', 0)
      end
      local t = tonumber(ARGV[a + 2])
      if t ~= 0 and redis.call('HINCRBY', key, 'tokr', -t) < 0 then
        redis.call('HSET', key, 'tokr', 0)
      end
      if redis.call('HINCRBY', key, 'infl', -1) < 0 then redis.call('HSET', key, 'infl', 0) end
    end
    local f = redis.call('HMGET', key, 'ws', 'pend', 'pnext')
    local ws, pend, pnext = tonumber(f[1]) or 0, tonumber(f[2]) or 0, tonumber(f[3]) or 0
    if now >= ws + window then redis.call('HSET', key, 'ws', now, 'req', 0, 'tok', 0) end
    if pend ~= 0 and pend <= now then
      -- The budget period ended: start the next one. When its end is not known yet, the
      -- next reservation learns it from the store.
      if pnext > now then pend = pnext else pend = 0 end
      redis.call('HSET', key, 'spent', 0, 'pend', pend, 'pnext', 0)
    end
    redis.call('HINCRBY', key, 'spent', cost_s)
    redis.call('HINCRBY', key, 'tok', tokens)
    redis.call('PEXPIRE', key, keep)
  end
end
return 1
