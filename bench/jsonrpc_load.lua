-- wrk script: one JSON-RPC `tools/call` per request, each with its own id, and every answer checked.
--
--   wrk -t1 -cN -dS --timeout 5s -H 'Authorization: ...' -s bench/jsonrpc_load.lua URL -- FIRST_ID TOOL
--
-- Why: an MCP server pairs answers with requests by id; the same id on concurrent requests of one
-- session makes an SDK server answer one and leave the others hanging. So ids here count up from
-- FIRST_ID (give each run its own range), and an answer counts only if it is HTTP 200, carries the id
-- of a request still waiting for it (not seen before, not someone else's), has a "result", no JSON-RPC
-- "error" and no "isError": true. JSON bodies and SSE bodies (`data: {...}` events) are both read
-- as text, so one event or a whole stream of them is checked the same way.
--
-- `done` prints one line `JSONRPC_LOAD {json}` with counts (sent, answered, rejected by kind, socket
-- errors) and latency percentiles (microseconds), which bench/harness.py reads. Requests sent but not
-- answered when the run ends were in flight (at most one per connection) or hung.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  first_id = tonumber(args[1]) or 1
  next_id = first_id
  local tool = args[2] or "echo"
  wrk.method = "POST"
  prefix = '{"jsonrpc":"2.0","id":'
  suffix = ',"method":"tools/call","params":{"name":"' .. tool .. '","arguments":{"text":"hello"}}}'
  waiting = {}
  ok = 0
  bad = 0
  bad_status = 0
  bad_id = 0
  sample = ""
end

function request()
  local id = next_id
  next_id = next_id + 1
  waiting[id] = true
  return wrk.format(nil, nil, nil, prefix .. id .. suffix)
end

local function reject(kind, status, body)
  bad = bad + 1
  if kind == "status" then bad_status = bad_status + 1 end
  if kind == "id" then bad_id = bad_id + 1 end
  if sample == "" then sample = kind .. " " .. status .. " " .. string.sub(body, 1, 300) end
end

function response(status, headers, body)
  if status ~= 200 then return reject("status", status, body) end
  local id = tonumber(string.match(body, '"id"%s*:%s*(%d+)'))
  if id == nil or not waiting[id] then return reject("id", status, body) end
  waiting[id] = nil
  if not string.find(body, '"result"%s*:') or string.find(body, '"error"%s*:')
      or string.find(body, '"isError"%s*:%s*true') then
    return reject("body", status, body)
  end
  ok = ok + 1
end

function done(summary, latency, requests)
  local good, wrong, wrong_status, wrong_id, first, sent = 0, 0, 0, 0, "", 0
  for _, thread in ipairs(threads) do
    sent = sent + thread:get("next_id") - thread:get("first_id")
    good = good + thread:get("ok")
    wrong = wrong + thread:get("bad")
    wrong_status = wrong_status + thread:get("bad_status")
    wrong_id = wrong_id + thread:get("bad_id")
    if first == "" then first = thread:get("sample") end
  end
  local e = summary.errors
  first = string.gsub(first, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)
  io.write(string.format(
    'JSONRPC_LOAD {"sent":%d,"requests":%d,"duration_us":%d,"ok":%d,"bad":%d,"bad_status":%d,"bad_id":%d,'
      .. '"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"sample":"%s"}\n',
    sent, summary.requests, summary.duration, good, wrong, wrong_status, wrong_id, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, first))
end
