-- ordering.Store.Abort: ordering.State.Abort in Lua. KEYS[1]: the state. ARGV: seq, owner.
-- Returns 1 when the claim was given up, 0 when owner did not hold it.
local v = redis.call('HMGET', KEYS[1], 'l', 'cs', 'co')
if v[3] ~= ARGV[2] or tonumber(v[2]) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'cs', 0, 'co', '', 'cu', 0)
if tonumber(ARGV[1]) == (tonumber(v[1]) or 0) + 1 then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'gs', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
return 1
