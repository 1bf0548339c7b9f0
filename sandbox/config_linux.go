package sandbox

// initConfig is what the parent sends the sandbox init over fd 3.
type initConfig struct {
	Lower       string    `json:"lower"`
	Writable    bool      `json:"writable"`
	NoOverlay   bool      `json:"noOverlay,omitempty"`
	Probe       string    `json:"probe,omitempty"`
	Upper       string    `json:"upper"`
	Work        string    `json:"work"`
	Root        string    `json:"root"`
	Args        []string  `json:"args"`
	Env         []string  `json:"env"`
	Dir         string    `json:"dir"`
	Hostname    string    `json:"hostname"`
	Mounts      []Mount   `json:"mounts"`
	HostNetwork bool      `json:"hostNetwork"`
	Emulator    *Emulator `json:"emulator,omitempty"`
}

// initReport is one line the init writes back over fd 4.
type initReport struct {
	Note  string `json:"note,omitempty"`
	Step  string `json:"step,omitempty"`
	Error string `json:"error,omitempty"`
}

const (
	configFD = 3
	reportFD = 4
	goFD     = 5 // helper id mapping only: one byte when the maps are written
)
