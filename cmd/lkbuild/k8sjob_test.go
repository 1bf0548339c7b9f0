package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
)

// batchV1Fields are the fields of the Kubernetes objects a Job holds, as
// the API reference (v1.31) lists them, for the parts lkbuild writes: an
// unknown field is refused by kubectl apply's strict field validation. It
// is written from the reference, apart from the generator's types.
var batchV1Fields = map[string][]string{
	"Job":                  {"apiVersion", "kind", "metadata", "spec", "status"},
	"ObjectMeta":           {"annotations", "generateName", "labels", "name", "namespace"},
	"JobSpec":              {"activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completionMode", "completions", "managedBy", "manualSelector", "maxFailedIndexes", "parallelism", "podFailurePolicy", "podReplacementPolicy", "selector", "successPolicy", "suspend", "template", "ttlSecondsAfterFinished"},
	"PodFailurePolicy":     {"rules"},
	"PodFailurePolicyRule": {"action", "onExitCodes", "onPodConditions"},
	"OnExitCodes":          {"containerName", "operator", "values"},
	"OnPodConditions":      {"status", "type"},
	"PodTemplateSpec":      {"metadata", "spec"},
	"PodSpec":              {"activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers", "dnsPolicy", "hostIPC", "hostNetwork", "hostPID", "hostUsers", "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "priorityClassName", "restartPolicy", "runtimeClassName", "schedulerName", "securityContext", "serviceAccountName", "terminationGracePeriodSeconds", "tolerations", "volumes"},
	"Container":            {"args", "command", "env", "envFrom", "image", "imagePullPolicy", "name", "resources", "securityContext", "volumeMounts", "workingDir"},
	"EnvVar":               {"name", "value", "valueFrom"},
	"SecurityContext":      {"allowPrivilegeEscalation", "appArmorProfile", "capabilities", "privileged", "procMount", "readOnlyRootFilesystem", "runAsGroup", "runAsNonRoot", "runAsUser", "seccompProfile", "seLinuxOptions"},
	"Capabilities":         {"add", "drop"},
	"Profile":              {"localhostProfile", "type"},
	"VolumeMount":          {"mountPath", "name", "readOnly", "subPath"},
	"Volume":               {"configMap", "emptyDir", "name", "persistentVolumeClaim", "secret"},
	"SecretVolumeSource":   {"defaultMode", "items", "optional", "secretName"},
	"EmptyDirVolumeSource": {"medium", "sizeLimit"},
}

// checkBatchV1Job checks data as a batch/v1 Job that builds n targets:
// known fields only, in their types, and the rules the API server applies
// to Indexed Jobs, pod failure policies and user namespaces.
func checkBatchV1Job(t *testing.T, data []byte, n int) {
	t.Helper()
	var job map[string]any
	if err := json.Unmarshal(data, &job); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	obj := func(v any, kind, path string) map[string]any {
		m, ok := v.(map[string]any)
		if !ok {
			fail("%s: not an object (%s)", path, kind)
			return nil
		}
		for k := range m {
			if !slices.Contains(batchV1Fields[kind], k) {
				fail("%s.%s: not a field of %s", path, k, kind)
			}
		}
		return m
	}
	list := func(v any, path string) []any {
		l, ok := v.([]any)
		if !ok {
			fail("%s: not a list", path)
		}
		return l
	}
	str := func(v any, path string) string {
		s, ok := v.(string)
		if !ok || s == "" {
			fail("%s: not a non-empty string", path)
		}
		return s
	}
	integer := func(v any, path string) int {
		f, ok := v.(float64)
		if !ok || f != float64(int(f)) {
			fail("%s: not an integer", path)
		}
		return int(f)
	}

	j := obj(job, "Job", "")
	if j["apiVersion"] != "batch/v1" || j["kind"] != "Job" {
		fail("apiVersion %v, kind %v", j["apiVersion"], j["kind"])
	}
	meta := obj(j["metadata"], "ObjectMeta", "metadata")
	str(meta["name"], "metadata.name")
	spec := obj(j["spec"], "JobSpec", "spec")
	if spec["completionMode"] != "Indexed" {
		fail("spec.completionMode %v, want Indexed", spec["completionMode"])
	}
	// Indexed needs completions; parallelism is at most that.
	if c := integer(spec["completions"], "spec.completions"); c != n {
		fail("spec.completions %d, want %d", c, n)
	}
	if p := integer(spec["parallelism"], "spec.parallelism"); p < 1 || p > n {
		fail("spec.parallelism %d", p)
	}
	// backoffLimitPerIndex needs Indexed; FailIndex needs it.
	perIndex, hasPerIndex := spec["backoffLimitPerIndex"]
	if hasPerIndex {
		integer(perIndex, "spec.backoffLimitPerIndex")
	}
	tmpl := obj(spec["template"], "PodTemplateSpec", "spec.template")
	obj(tmpl["metadata"], "ObjectMeta", "spec.template.metadata")
	pod := obj(tmpl["spec"], "PodSpec", "spec.template.spec")
	// A Job's pods: Never or OnFailure; a pod failure policy needs Never.
	restart := str(pod["restartPolicy"], "restartPolicy")
	if restart != "Never" && restart != "OnFailure" {
		fail("restartPolicy %s", restart)
	}
	containers := map[string]bool{}
	hostUsers, _ := pod["hostUsers"].(bool)
	if _, ok := pod["hostUsers"].(bool); !ok {
		fail("hostUsers: not a boolean")
	}
	vols := map[string]bool{}
	for i, v := range list(pod["volumes"], "volumes") {
		vm := obj(v, "Volume", fmt.Sprintf("volumes[%d]", i))
		vols[str(vm["name"], "volume name")] = true
		sources := 0
		if s, ok := vm["secret"]; ok {
			sources++
			str(obj(s, "SecretVolumeSource", "secret")["secretName"], "secretName")
		}
		if e, ok := vm["emptyDir"]; ok {
			sources++
			obj(e, "EmptyDirVolumeSource", "emptyDir")
		}
		if sources != 1 {
			fail("volumes[%d]: %d sources, want one", i, sources)
		}
	}
	for i, c := range list(pod["containers"], "containers") {
		path := fmt.Sprintf("containers[%d]", i)
		cm := obj(c, "Container", path)
		containers[str(cm["name"], path+".name")] = true
		str(cm["image"], path+".image")
		args := list(cm["args"], path+".args")
		var sargs []string
		for _, a := range args {
			sargs = append(sargs, str(a, path+".args[]"))
		}
		if len(sargs) < 2 || sargs[0] != "build" || !slices.Contains(sargs, "--push") {
			fail("%s.args %q: not an lkbuild build --push", path, sargs)
		}
		if i := slices.Index(sargs, "--matrix-targets"); i < 0 || i+1 >= len(sargs) || len(strings.Fields(sargs[i+1])) != n {
			fail("%s.args: --matrix-targets does not list %d targets: %q", path, n, sargs)
		}
		for j, e := range list(cm["env"], path+".env") {
			em := obj(e, "EnvVar", fmt.Sprintf("%s.env[%d]", path, j))
			str(em["name"], "env name")
			if _, ok := em["value"].(string); !ok {
				fail("%s.env[%d].value: not a string", path, j)
			}
		}
		for j, m := range list(cm["volumeMounts"], path+".volumeMounts") {
			mm := obj(m, "VolumeMount", fmt.Sprintf("%s.volumeMounts[%d]", path, j))
			if !vols[str(mm["name"], "mount name")] {
				fail("%s.volumeMounts[%d]: no volume %v", path, j, mm["name"])
			}
			if p := str(mm["mountPath"], "mountPath"); !strings.HasPrefix(p, "/") {
				fail("mountPath %s is not absolute", p)
			}
		}
		sc := obj(cm["securityContext"], "SecurityContext", path+".securityContext")
		obj(sc["capabilities"], "Capabilities", "capabilities")
		for _, p := range []string{"seccompProfile", "appArmorProfile"} {
			pm := obj(sc[p], "Profile", p)
			if typ := str(pm["type"], p+".type"); !slices.Contains([]string{"RuntimeDefault", "Unconfined", "Localhost"}, typ) {
				fail("%s.type %s", p, typ)
			}
		}
		// procMount Unmasked is refused unless the pod has user
		// namespaces of its own.
		if pm := sc["procMount"]; pm != nil && pm != "Default" && (pm != "Unmasked" || hostUsers) {
			fail("procMount %v with hostUsers %v", pm, hostUsers)
		}
		if sc["allowPrivilegeEscalation"] != false {
			fail("allowPrivilegeEscalation %v, want false", sc["allowPrivilegeEscalation"])
		}
	}
	if pfp, ok := spec["podFailurePolicy"]; ok {
		if restart != "Never" {
			fail("a podFailurePolicy needs restartPolicy Never")
		}
		for i, r := range list(obj(pfp, "PodFailurePolicy", "podFailurePolicy")["rules"], "rules") {
			rm := obj(r, "PodFailurePolicyRule", fmt.Sprintf("rules[%d]", i))
			action := str(rm["action"], "action")
			if !slices.Contains([]string{"FailJob", "FailIndex", "Ignore", "Count"}, action) {
				fail("rules[%d].action %s", i, action)
			}
			if action == "FailIndex" && !hasPerIndex {
				fail("rules[%d]: FailIndex needs backoffLimitPerIndex", i)
			}
			_, codes := rm["onExitCodes"]
			_, conds := rm["onPodConditions"]
			if codes == conds {
				fail("rules[%d]: want exactly one of onExitCodes, onPodConditions", i)
			}
			if codes {
				ec := obj(rm["onExitCodes"], "OnExitCodes", "onExitCodes")
				if name, ok := ec["containerName"]; ok && !containers[name.(string)] {
					fail("onExitCodes.containerName %v: no such container", name)
				}
				op := str(ec["operator"], "operator")
				vals := list(ec["values"], "values")
				if op != "In" && op != "NotIn" || len(vals) == 0 {
					fail("onExitCodes: operator %s, %d values", op, len(vals))
				}
				var seen []int
				for _, v := range vals {
					x := integer(v, "value")
					if op == "In" && x == 0 {
						fail("onExitCodes: 0 with In")
					}
					seen = append(seen, x)
				}
				if !sort.IntsAreSorted(seen) || len(slices.Compact(slices.Clone(seen))) != len(seen) {
					fail("onExitCodes.values %v: want them sorted, each once", seen)
				}
			}
			if conds {
				for j, c := range list(rm["onPodConditions"], "onPodConditions") {
					str(obj(c, "OnPodConditions", fmt.Sprintf("onPodConditions[%d]", j))["type"], "type")
				}
			}
		}
	}
	for _, e := range errs {
		t.Error(e)
	}
}
