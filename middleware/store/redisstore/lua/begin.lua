-- ordering.Store.Begin: ordering.State.Begin in Lua (keep the two in step; storetest checks).
-- KEYS[1]: the state (a hash: e epoch, l last, cs/co/cu claim seq/owner/until ms, gs gap
-- since ms, 0 for none). ARGV: epoch, seq, owner, lease ms, gap timeout ms, retention ms,
-- accept epoch (1: a newer epoch may replace the state; 0: it answers 7, new epoch, and
-- changes nothing).
-- sk: the numbers given up on, comma-separated, increasing (ordering.State.Skipped).
-- Returns {outcome, last, skipped, wait ms, in flight (0/1), gap age ms}; outcomes as
-- ordering.Outcome: 1 proceed, 2 duplicate, 3 gap, 4 busy, 5 stale, 6 late, 7 new epoch.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch, seq, owner = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local lease, gapTimeout = tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 'e', 'l', 'cs', 'co', 'cu', 'gs')
local e, l, cs, co, cu, gs = tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0, v[4] or '', tonumber(v[5]) or 0, tonumber(v[6]) or 0
local changed, reset = false, false
local function save()
  redis.call('HSET', KEYS[1], 'e', e, 'l', l, 'cs', cs, 'co', co, 'cu', cu, 'gs', gs)
  if reset then
    redis.call('HDEL', KEYS[1], 'sk')
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
if epoch > e then
  if ARGV[7] ~= '1' then
    return {7, l, 0, 0, 0, 0}
  end
  e, l, cs, co, cu, gs = epoch, 0, 0, '', 0, 0
  changed, reset = true, true
end
if epoch < e then
  return {5, l, 0, 0, 0, 0}
end
local live = co ~= '' and now < cu and co ~= owner
if seq <= l then
  local sk = redis.call('HGET', KEYS[1], 'sk') or ''
  if changed or not string.find(',' .. sk .. ',', ',' .. ARGV[2] .. ',', 1, true) then
    if changed then save() end
    return {2, l, 0, 0, 0, 0}
  end
  if live then
    return {4, l, 0, cu - now, 0, 0}
  end
  redis.call('HSET', KEYS[1], 'cs', seq, 'co', owner, 'cu', now + lease)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {6, l, 0, 0, 0, 0}
end
if live then
  if seq == l + 1 then
    if changed then save() end
    return {4, l, 0, cu - now, 0, 0}
  end
  if gs == 0 then
    gs = now
    changed = true
  end
  if changed then save() end
  return {3, l, 0, 0, 1, now - gs}
end
local skipped = 0
if seq > l + 1 then
  if gs == 0 then
    gs = now
    changed = true
  end
  local age = now - gs
  if gapTimeout <= 0 or age < gapTimeout then
    if changed then save() end
    return {3, l, 0, 0, 0, age}
  end
  skipped = seq - l - 1
end
cs, co, cu = seq, owner, now + lease
if skipped == 0 then
  gs = 0
end
save()
return {1, l, skipped, 0, 0, 0}
