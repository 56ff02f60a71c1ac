-- startstop.lua -- the start/stop cycle: POST /api/v1/pipelines/:id/start, then /stop, then start …
-- Thread t of T owns the seeded pipelines t, t+T, t+2T … (ids 00000000-0000-4000-8000-%012d, 1..seed_n),
-- goes round them, and flips a pipeline's state only when the server accepted the call (200 or 202). A
-- 409 (a start while the previous run's stop is not yet acknowledged by the agent, or the reverse) is
-- counted and the same call is tried again on the next round; anything else counts in wrk's errors.
-- Run it with one connection per thread (wrk -tN -cN): a response is then the answer to the request the
-- thread made last, so the state it flips is the right one (bench/lifecycle.sh does so).
-- Environment: BENCH_TOKEN (operator or admin), BENCH_SEED_N, BENCH_THREADS (wrk -t).
local token = os.getenv("BENCH_TOKEN") or ""
local seed_n = tonumber(os.getenv("BENCH_SEED_N") or "200")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  mine = {}
  for i = tid, seed_n, nthreads do table.insert(mine, { n = i, running = false }) end
  cursor = 0
  accepted, queued, conflicts, other = 0, 0, 0, 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  cursor = cursor % #mine + 1
  current = mine[cursor]
  local verb = current.running and "stop" or "start"
  return wrk.format(nil, string.format("/api/v1/pipelines/00000000-0000-4000-8000-%012d/%s", current.n, verb))
end

-- the answer to the request made last on this thread's one connection
function response(status, headers, body)
  if status == 200 or status == 202 then
    current.running = not current.running
    accepted = accepted + 1
    if status == 202 then queued = queued + 1 end
  elseif status == 409 then
    conflicts = conflicts + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, q, c, o = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted"); q = q + t:get("queued"); c = c + t:get("conflicts"); o = o + t:get("other")
  end
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT rps=%.1f p50_us=%.0f p99_us=%.0f accepted=%d queued_202=%d conflicts_409=%d other=%d requests=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99), a, q, c, o, summary.requests))
end
