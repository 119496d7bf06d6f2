-- Argo CD health check for every certctl.io kind (Issuer, ClusterIssuer,
-- ManagedCertificate, Revocation, NotificationChannel, NotificationEvent).
--
-- The operator reports readiness through a Ready condition shaped like
-- metav1.Condition, with observedGeneration:
--   Ready=True                      -> Healthy
--   Ready=False                     -> Degraded, unless the object's phase says
--                                      the operator is still working on it
--   Ready=Unknown, no condition yet,
--   or a newer generation unseen    -> Progressing
-- argocd-cm-health.yaml carries this script once per kind; it is generated
-- from this file by `python -m certctl_operator.dev.render_manifests`.

-- Phases in which Ready=False means "not yet" rather than "broken".
local progressing_phases = {
  NotificationEvent = { Pending = true, Failed = true },
  Revocation = { Pending = true },
}

local hs = {}
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for certctl-operator to report a Ready condition"
  return hs
end

if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for certctl-operator to act on generation " .. generation
  return hs
end

for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    local message = condition.reason or ""
    if condition.message ~= nil and condition.message ~= "" then
      message = message .. ": " .. condition.message
    end
    hs.message = message
    if generation ~= nil and condition.observedGeneration ~= nil and condition.observedGeneration < generation then
      hs.status = "Progressing"
    elseif condition.status == "True" then
      hs.status = "Healthy"
    elseif condition.status == "False" then
      local phases = progressing_phases[obj.kind]
      if phases ~= nil and obj.status.phase ~= nil and phases[obj.status.phase] then
        hs.status = "Progressing"
      else
        hs.status = "Degraded"
      end
    else
      hs.status = "Progressing"
    end
    return hs
  end
end

hs.status = "Progressing"
hs.message = "Waiting for certctl-operator to report a Ready condition"
return hs
