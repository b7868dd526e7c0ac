-- idempotency.Store.Complete. KEYS[1]: the key. ARGV: owner, retention (ms).
-- Returns 1 if owner held the claim, 0 if not (the key is marked done either way).
local v = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2])
if v == 'c:' .. ARGV[1] then
  return 1
end
return 0
