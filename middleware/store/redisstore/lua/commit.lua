-- ordering.Store.Commit: ordering.State.Commit in Lua. KEYS[1]: the state.
-- ARGV: seq, owner, retention ms, MaxSkipped. Returns 1 when committed, 0 when the claim was
-- lost.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq, owner = tonumber(ARGV[1]), ARGV[2]
local v = redis.call('HMGET', KEYS[1], 'e', 'l', 'cs', 'co', 'cu')
local e, l, cs, co, cu = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, v[4] or '', tonumber(v[5]) or 0
local mine = co == owner and cs == seq
local free = co == '' or now >= cu
if not mine and not (free and seq == l + 1) then
  return 0
end
if seq <= l then
  -- A late message: the key stays; the number is no longer missing.
  local sk = redis.call('HGET', KEYS[1], 'sk') or ''
  local kept = {}
  for n in string.gmatch(sk, '[^,]+') do
    if n ~= ARGV[1] then kept[#kept + 1] = n end
  end
  redis.call('HSET', KEYS[1], 'cs', 0, 'co', '', 'cu', 0, 'sk', table.concat(kept, ','))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if seq > l + 1 then
  -- Skipped ahead: remember the last MaxSkipped (ARGV[4]) numbers given up on.
  local max = tonumber(ARGV[4])
  local list = {}
  for n in string.gmatch(redis.call('HGET', KEYS[1], 'sk') or '', '[^,]+') do
    list[#list + 1] = n
  end
  local from = l + 1
  if seq - max > from then from = seq - max end
  for n = from, seq - 1 do
    list[#list + 1] = string.format('%d', n)
  end
  local first = 1
  if #list > max then first = #list - max + 1 end
  redis.call('HSET', KEYS[1], 'sk', table.concat(list, ',', first, #list))
end
redis.call('HSET', KEYS[1], 'e', e, 'l', seq, 'cs', 0, 'co', '', 'cu', 0, 'gs', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
