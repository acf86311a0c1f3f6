-- Runs sealedsecret-health.lua as Argo CD does (a global `obj`, the script's return value)
-- over the states a SealedSecret passes through. Run by tests/tests/argocd_health.rs with
-- gopher-lua's glua: `glua health_test.lua` in this directory.
local script = assert(loadfile("sealedsecret-health.lua"))

local function check(name, resource, status, message)
  obj = resource
  local hs = script()
  if hs.status ~= status then
    error(name .. ": status " .. tostring(hs.status) .. ", want " .. status)
  end
  if message ~= nil and string.find(hs.message, message, 1, true) == nil then
    error(name .. ": message " .. tostring(hs.message) .. " lacks " .. message)
  end
  print("ok " .. name)
end

check("new", { metadata = { generation = 1 } }, "Progressing", "Waiting")
check("an old generation", {
  metadata = { generation = 2 },
  status = { observedGeneration = 1, conditions = { { type = "Ready", status = "True", reason = "Succeeded", message = "written" } } },
}, "Progressing", "generation 2")
check("written", {
  metadata = { generation = 2 },
  status = { observedGeneration = 2, conditions = { { type = "Ready", status = "True", reason = "Succeeded", message = "Secret app/db holds the values of generation 2" } } },
}, "Healthy", "Succeeded")
check("not opened", {
  metadata = { generation = 1 },
  status = { observedGeneration = 1, conditions = { { type = "Ready", status = "False", reason = "DecryptionFailed", message = "SealedSecret app/db: sealed to other keys" } } },
}, "Degraded", "DecryptionFailed")
check("the API failing", {
  metadata = { generation = 1 },
  status = { observedGeneration = 1, conditions = { { type = "Ready", status = "False", reason = "ApiFailed", message = "writing Secret app/db: the API server answered 500" } } },
}, "Progressing", "ApiFailed")
check("a condition without reason or message", {
  metadata = { generation = 1 },
  status = { observedGeneration = 1, conditions = { { type = "Ready", status = "False" } } },
}, "Degraded", nil)
check("status without conditions", {
  metadata = { generation = 1 },
  status = { observedGeneration = 1 },
}, "Progressing", nil)
