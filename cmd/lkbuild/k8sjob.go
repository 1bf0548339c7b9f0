package main

import (
	"strings"

	"github.com/lkbuild/lkbuild/builder"
)

// A Kubernetes batch/v1 Job, as far as lkbuild matrix --format k8s writes
// one: the fields in Kubernetes' own names and order of the API reference.
type k8sJobSpec struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   k8sMetadata `json:"metadata"`
	Spec       k8sJobBody  `json:"spec"`
}

type k8sMetadata struct {
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

type k8sJobBody struct {
	CompletionMode       string              `json:"completionMode"`
	Completions          int                 `json:"completions"`
	Parallelism          int                 `json:"parallelism"`
	BackoffLimitPerIndex int                 `json:"backoffLimitPerIndex"`
	PodFailurePolicy     k8sPodFailurePolicy `json:"podFailurePolicy"`
	Template             k8sPodTemplate      `json:"template"`
}

type k8sPodFailurePolicy struct {
	Rules []k8sPodFailureRule `json:"rules"`
}

type k8sPodFailureRule struct {
	Action          string            `json:"action"`
	OnExitCodes     *k8sExitCodes     `json:"onExitCodes,omitempty"`
	OnPodConditions []k8sPodCondition `json:"onPodConditions,omitempty"`
}

type k8sExitCodes struct {
	ContainerName string `json:"containerName"`
	Operator      string `json:"operator"`
	Values        []int  `json:"values"`
}

type k8sPodCondition struct {
	Type string `json:"type"`
}

type k8sPodTemplate struct {
	Metadata k8sMetadata `json:"metadata"`
	Spec     k8sPodSpec  `json:"spec"`
}

type k8sPodSpec struct {
	RestartPolicy string         `json:"restartPolicy"`
	HostUsers     bool           `json:"hostUsers"`
	Containers    []k8sContainer `json:"containers"`
	Volumes       []k8sVolume    `json:"volumes"`
}

type k8sContainer struct {
	Name            string           `json:"name"`
	Image           string           `json:"image"`
	Args            []string         `json:"args"`
	Env             []k8sEnv         `json:"env"`
	SecurityContext k8sSecurity      `json:"securityContext"`
	VolumeMounts    []k8sVolumeMount `json:"volumeMounts"`
}

type k8sEnv struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type k8sSecurity struct {
	RunAsUser                int64           `json:"runAsUser"`
	RunAsGroup               int64           `json:"runAsGroup"`
	RunAsNonRoot             bool            `json:"runAsNonRoot"`
	AllowPrivilegeEscalation bool            `json:"allowPrivilegeEscalation"`
	Capabilities             k8sCapabilities `json:"capabilities"`
	ProcMount                string          `json:"procMount"`
	SeccompProfile           k8sProfile      `json:"seccompProfile"`
	AppArmorProfile          k8sProfile      `json:"appArmorProfile"`
}

type k8sCapabilities struct {
	Drop []string `json:"drop"`
}

type k8sProfile struct {
	Type string `json:"type"`
}

type k8sVolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

type k8sVolume struct {
	Name     string     `json:"name"`
	EmptyDir *struct{}  `json:"emptyDir,omitempty"`
	Secret   *k8sSecret `json:"secret,omitempty"`
}

type k8sSecret struct {
	SecretName string `json:"secretName"`
}

// jobOptions are lkbuild matrix's --job-* flags.
type jobOptions struct {
	Name, Image, Secret string
	Parallelism         int
	Insecure            bool
}

// Exit codes of lkbuild (see lkbuild matrix --help).
const (
	exitFailure       = 1
	exitRegistryFault = 3
	exitInterrupted   = 130
)

// k8sJob is the Indexed Job that builds ts: one completion per target,
// every pod the same, its index (JOB_COMPLETION_INDEX) picking its target
// from --matrix-targets.
func k8sJob(m builder.MatrixRequest, ts []builder.MatrixTarget, o jobOptions) k8sJobSpec {
	ids := make([]string, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	args := append([]string{"build", "--push"}, m.Args()...)
	if o.Insecure {
		args = append(args, "--insecure-registry")
	}
	args = append(args, "--matrix-targets", strings.Join(ids, " "))
	parallelism := len(ts)
	if o.Parallelism > 0 && o.Parallelism < parallelism {
		parallelism = o.Parallelism
	}
	labels := map[string]string{"app.kubernetes.io/name": "lkbuild", "app.kubernetes.io/instance": o.Name}
	c := k8sContainer{
		Name: "lkbuild", Image: o.Image, Args: args,
		Env: []k8sEnv{{Name: "LKBUILD_CACHE_DIR", Value: "/cache"}, {Name: "HOME", Value: "/tmp"}},
		SecurityContext: k8sSecurity{
			RunAsUser: 1000, RunAsGroup: 1000, RunAsNonRoot: true,
			Capabilities: k8sCapabilities{Drop: []string{"ALL"}},
			ProcMount:    "Unmasked",
			// The runtimes' default profiles refuse unshare(CLONE_NEWUSER)
			// to a process without CAP_SYS_ADMIN.
			SeccompProfile: k8sProfile{Type: "Unconfined"}, AppArmorProfile: k8sProfile{Type: "Unconfined"},
		},
		VolumeMounts: []k8sVolumeMount{{Name: "cache", MountPath: "/cache"}, {Name: "tmp", MountPath: "/tmp"}},
	}
	vols := []k8sVolume{{Name: "cache", EmptyDir: &struct{}{}}, {Name: "tmp", EmptyDir: &struct{}{}}}
	if o.Secret != "" {
		c.Env = append(c.Env, k8sEnv{Name: "DOCKER_CONFIG", Value: "/docker"})
		c.VolumeMounts = append(c.VolumeMounts, k8sVolumeMount{Name: "docker", MountPath: "/docker", ReadOnly: true})
		vols = append(vols, k8sVolume{Name: "docker", Secret: &k8sSecret{SecretName: o.Secret}})
	}
	return k8sJobSpec{
		APIVersion: "batch/v1", Kind: "Job",
		Metadata: k8sMetadata{Name: o.Name, Labels: labels},
		Spec: k8sJobBody{
			CompletionMode: "Indexed", Completions: len(ts), Parallelism: parallelism,
			// A registry fault (exit 3) or an interruption is tried again,
			// twice; a failed build fails its index at once; an eviction
			// does not count.
			BackoffLimitPerIndex: 2,
			PodFailurePolicy: k8sPodFailurePolicy{Rules: []k8sPodFailureRule{
				{Action: "Ignore", OnPodConditions: []k8sPodCondition{{Type: "DisruptionTarget"}}},
				{Action: "FailIndex", OnExitCodes: &k8sExitCodes{ContainerName: "lkbuild", Operator: "NotIn", Values: []int{exitRegistryFault, exitInterrupted}}},
			}},
			Template: k8sPodTemplate{
				Metadata: k8sMetadata{Labels: labels},
				Spec: k8sPodSpec{
					RestartPolicy: "Never", HostUsers: false,
					Containers: []k8sContainer{c}, Volumes: vols,
				},
			},
		},
	}
}
