-- SPDX-License-Identifier: MIT
-- wrk script: sends `depth` requests (default 16) for the URL's path in one
-- write and waits for all their responses before the next batch.
--
--   wrk -c100 -s bench/pipeline.lua http://127.0.0.1:8080/plaintext -- 16
--
-- wrk records one latency sample per batch (from the write to the last
-- response), so percentiles are per batch, not per request.
--
-- wrk's own "Latency Distribution" is wrong under pipelining: its
-- coordinated-omission correction (stats_correct) takes the interval between
-- requests as duration / (requests / connections), 16 times too small here,
-- and adds synthetic samples below the recorded minimum, which its percentile
-- walk never reaches, so high percentiles print as 0.00us.  done() below undoes
-- that correction (it is deterministic, and each synthetic sample lies below
-- the real one it came from) and prints the percentiles of the real samples:
--   batch_latency_us p50 N p90 N p99 N max N samples N
-- It needs the connection count, which wrk does not tell scripts: it reads
-- wrk's -c/--connections from /proc/self/cmdline (wrk's default, 10, without
-- one); the environment variable CORIO_BENCH_WRK_CONNS, when set, wins.

local batch

-- wrk's scan_metric: a number with an optional k, M or G (x1000 each).
local function metric(s)
  local n, unit = tostring(s):match("^(%d+%.?%d*)([kKmMgG]?)$")
  if not n then
    return nil
  end
  local scale = ({ [""] = 1, k = 1e3, K = 1e3, m = 1e6, M = 1e6, g = 1e9, G = 1e9 })[unit]
  return math.floor(tonumber(n) * scale)
end

-- The connection count wrk runs with: CORIO_BENCH_WRK_CONNS, else -c N, -cN,
-- --connections N or --connections=N among wrk's arguments (before --), else 10.
local function wrk_connections()
  local env = metric(os.getenv("CORIO_BENCH_WRK_CONNS") or "")
  if env then
    return env
  end
  local f = io.open("/proc/self/cmdline", "rb")
  if not f then
    return nil
  end
  local argv = {}
  for a in f:read("*a"):gmatch("([^%z]*)%z") do
    argv[#argv + 1] = a
  end
  f:close()
  for i = 2, #argv do
    local a, v = argv[i], nil
    if a == "--" then
      break
    elseif a == "-c" or a == "--connections" then
      v = argv[i + 1]
    elseif a:sub(1, 14) == "--connections=" then
      v = a:sub(15)
    elseif a:sub(1, 2) == "-c" then
      v = a:sub(3)
    end
    if v then
      return metric(v)
    end
  end
  return 10
end

init = function(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format()
  end
  batch = table.concat(r)
end

request = function()
  return batch
end

done = function(summary, latency, requests)
  local conns = wrk_connections()
  if not conns or summary.requests < conns then
    return
  end
  -- wrk: interval = runtime_us / (complete / connections), integer division.
  local expected = math.floor(summary.duration / math.floor(summary.requests / conns))
  -- latency(i) walks wrk's histogram (in C) from its minimum each time, and
  -- the walk below (in Lua) takes max / expected steps per value: with a
  -- long tail (a batch waiting for its timeout) they run to hundreds of
  -- billions of steps and wrk hangs in done().  Past a few seconds' worth,
  -- no percentiles rather than no end.
  local distinct = #latency
  local range = latency.max - latency.min + 1
  local walk = expected > 0 and distinct * (latency.max / expected) or 0
  if distinct * range > 5e9 or walk > 1e8 then
    io.stderr:write(string.format("batch_latency_us: not computed (%d distinct latencies "
      .. "over %d us: too long a walk)\n", distinct, range))
    return
  end
  local values, count = {}, {}
  for i = 1, #latency do
    local v, c = latency(i) -- the i-th distinct value from the minimum up, and its count
    values[i] = v
    count[v] = c
  end
  -- stats_correct, for n = 2e .. max ascending, added data[n] (its recorded
  -- count: additions only go below n) at n - e, n - 2e, ... while above e.
  -- Walking down from the top, each value's count is its recorded count once
  -- every larger value's additions have been taken back.
  if expected > 0 then
    for i = #values, 1, -1 do
      local n = values[i]
      local c = count[n]
      if c > 0 and n >= 2 * expected then
        local m = n - expected
        while m > expected do
          if count[m] then
            count[m] = count[m] - c
          end
          m = m - expected
        end
      end
    end
  end
  local total = 0
  for _, v in ipairs(values) do
    total = total + count[v]
  end
  if total <= 0 then
    return
  end
  local function pct(p)
    local rank = math.floor(p / 100 * total + 0.5 + 0.5) -- wrk: round(p/100*count + 0.5)
    local seen = 0
    for _, v in ipairs(values) do
      seen = seen + count[v]
      if seen >= rank then
        return v
      end
    end
    return values[#values]
  end
  local max = 0
  for _, v in ipairs(values) do
    if count[v] > 0 then
      max = v
    end
  end
  io.write(string.format("batch_latency_us p50 %d p90 %d p99 %d max %d samples %d\n",
    pct(50), pct(90), pct(99), max, total))
end
