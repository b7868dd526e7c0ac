-- idempotency.Store.Release. KEYS[1]: the key. ARGV: owner.
if redis.call('GET', KEYS[1]) == 'c:' .. ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
