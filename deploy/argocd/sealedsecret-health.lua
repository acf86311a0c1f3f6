-- Argo CD health check for sealsync.dev/v1 SealedSecret resources. Install it in argocd-cm
-- under resource.customizations.health.sealsync.dev_SealedSecret (see README.md here).
-- Healthy once the controller has written the Secret of the current generation; Degraded
-- with the controller's reason when it could not (DecryptionFailed, Conflict, ...);
-- Progressing until the controller has seen the current generation, or while the API server
-- fails its requests (ApiFailed, retried).
local hs = {}
if obj.status ~= nil then
  local generation = obj.metadata.generation
  local observed = obj.status.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    hs.status = "Progressing"
    hs.message = "Waiting for the sealsync controller to open generation " .. generation
    return hs
  end
  if obj.status.conditions ~= nil then
    for _, condition in ipairs(obj.status.conditions) do
      if condition.type == "Ready" then
        local reason = condition.reason or ""
        if condition.status == "True" then
          hs.status = "Healthy"
        elseif reason == "ApiFailed" then
          -- The API server failed a request: retried, and may pass.
          hs.status = "Progressing"
        else
          hs.status = "Degraded"
        end
        hs.message = reason .. ": " .. (condition.message or "")
        return hs
      end
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the sealsync controller to open it"
return hs
