-- Argo CD health check for memplace.io/v1alpha1 ModelDeployment.
--
-- memplace writes only status (never spec), through the status subresource:
--   Ready                  -> Healthy
--   Pending, Placed        -> Progressing (placed, pods not ready yet)
--   no status yet, or status.observedGeneration < metadata.generation -> Progressing
--   Unschedulable, Invalid -> Degraded
-- The message is status.message when the operator wrote one, else a short default.
local hs = {}

-- status.message first; else the message of the first condition that is not True
-- (Valid, Placed, Ready: it says what is missing); else the default.
local function message_or(status, default)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  if status.conditions ~= nil then
    for _, condition in ipairs(status.conditions) do
      if condition.status ~= "True" and condition.message ~= nil and condition.message ~= "" then
        return condition.message
      end
    end
  end
  return default
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for memplace to plan this ModelDeployment"
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
local observed = status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for memplace to plan generation " .. tostring(generation)
  return hs
end

local phase = status.phase
if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = message_or(status, "Ready")
elseif phase == "Pending" or phase == "Placed" then
  hs.status = "Progressing"
  hs.message = message_or(status, phase)
elseif phase == "Unschedulable" or phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = message_or(status, phase)
else
  hs.status = "Unknown"
  hs.message = message_or(status, "Unknown phase " .. tostring(phase))
end
return hs
