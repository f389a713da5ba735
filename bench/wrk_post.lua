-- wrk script for `run_wrk` in bench/service_harness.py: POSTs the events of a TSV file (path <TAB>
-- JSON body, one per line) in turn, counts answers that are not HTTP 200 with Symbolicator's
-- `completed` envelope, and prints one JSON line of figures when the run is done. A line whose body
-- is empty is a GET that must answer exactly `ok` (the health check: the HTTP floor).
local paths, bodies, next_event = {}, {}, 0
local threads = {}
bad = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    paths[#paths + 1] = line:sub(1, tab - 1)
    bodies[#bodies + 1] = line:sub(tab + 1)
  end
end

function request()
  next_event = next_event % #bodies + 1
  if bodies[next_event] == "" then
    return wrk.format("GET", paths[next_event])
  end
  return wrk.format("POST", paths[next_event], {["Content-Type"] = "application/json"}, bodies[next_event])
end

function response(status, headers, body)
  local ok
  if bodies[next_event] == "" then
    ok = body == "ok"
  else
    ok = body:sub(1, 64):find('"status":"completed"', 1, true) ~= nil
  end
  if status ~= 200 or not ok then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local errors = 0
  for _, thread in ipairs(threads) do
    errors = errors + thread:get("bad")
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "socket_errors": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errors,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
