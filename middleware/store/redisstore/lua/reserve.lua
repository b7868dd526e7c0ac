-- ordering.Store.Reserve for one counter. KEYS[1]: the counter (a hash: e epoch, s last
-- number). ARGV: count, retention (ms). A missing (or expired) counter starts at 0 with the
-- server's clock in Unix milliseconds as its epoch. Returns {epoch, last}.
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  local t = redis.call('TIME')
  e = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', KEYS[1], 'e', e, 's', 0)
end
local s = redis.call('HINCRBY', KEYS[1], 's', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {tonumber(e), s}
