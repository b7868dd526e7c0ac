-- idempotency.Store.Claim. KEYS[1]: the key. ARGV: owner, lease (ms).
-- The value is "c:<owner>" while claimed and "d" once done; Redis expires it.
-- Returns {status, remaining ms}: 1 acquired, 2 done, 3 busy.
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'c:' .. ARGV[1], 'PX', ARGV[2])
  return {1, 0}
end
if v == 'd' then
  return {2, 0}
end
if v == 'c:' .. ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0}
end
return {3, redis.call('PTTL', KEYS[1])}
