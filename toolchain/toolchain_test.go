package toolchain

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/kernel"
)

// mapFiles is a ReadFileFunc over a map.
func mapFiles(m map[string]string) ReadFileFunc {
	return func(name string) ([]byte, error) {
		if v, ok := m[name]; ok {
			return []byte(v), nil
		}
		return nil, fs.ErrNotExist
	}
}

// TestBinfmt: every arch lkbuild builds for can be emulated, each with
// its own ELF machine.
func TestBinfmt(t *testing.T) {
	seen := map[string]string{}
	for _, a := range kernel.Arches() {
		magic, mask, _ := binfmt(a)
		if len(magic) != len(elf64Magic)+8 || mask != elf64Mask {
			t.Errorf("%s: magic %q mask %q", a, magic, mask)
		}
		if other, ok := seen[magic]; ok {
			t.Errorf("%s and %s share a binfmt pattern", a, other)
		}
		seen[magic] = a.Uname
		if p := Platform(a); p.OS != "linux" || p.Architecture != a.OCI {
			t.Errorf("%s: platform %+v", a, p)
		}
	}
	if _, err := FindEmulator(kernel.Arch{Uname: "s390x"}, EmulatorHost{}); !errors.Is(err, ErrNoEmulator) {
		t.Errorf("an arch with no pattern: %v", err)
	}
}

func TestFindEmulator(t *testing.T) {
	arm64, _ := kernel.ParseArch("arm64")
	riscv, _ := kernel.ParseArch("riscv64")
	onPath := func(names ...string) func(string) (string, error) {
		return func(n string) (string, error) {
			for _, m := range names {
				if m == n {
					return "/usr/bin/" + n, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	hostEntry := "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c46\n"
	tests := []struct {
		name     string
		arch     kernel.Arch
		host     EmulatorHost
		wantErr  string
		register bool
		interp   string
	}{
		{"userns registration", arm64, EmulatorHost{LookPath: onPath("qemu-aarch64-static"), KernelRelease: "6.18.44-fc", ReadFile: mapFiles(nil)}, "", true, "/usr/bin/qemu-aarch64-static"},
		{"plain qemu name", riscv, EmulatorHost{LookPath: onPath("qemu-riscv64"), KernelRelease: "6.7.0", ReadFile: mapFiles(nil)}, "", true, "/usr/bin/qemu-riscv64"},
		{"missing qemu", arm64, EmulatorHost{LookPath: onPath(), KernelRelease: "6.18.0", ReadFile: mapFiles(nil)}, "apt-get install qemu-user-static; lkbuild doctor", false, ""},
		{"old kernel, host entry with F", arm64, EmulatorHost{LookPath: onPath("qemu-aarch64-static"), KernelRelease: "6.1.0-18-amd64",
			ReadFile: mapFiles(map[string]string{"/proc/sys/fs/binfmt_misc/qemu-aarch64": hostEntry})}, "", false, "/usr/libexec/qemu-binfmt/aarch64-binfmt-P"},
		{"old kernel, host entry without F", arm64, EmulatorHost{LookPath: onPath(), KernelRelease: "5.15.0",
			ReadFile: mapFiles(map[string]string{"/proc/sys/fs/binfmt_misc/qemu-aarch64": strings.Replace(hostEntry, "PF", "P", 1)})}, "lacks the F flag", false, ""},
		{"old kernel, nothing", arm64, EmulatorHost{LookPath: onPath("qemu-aarch64-static"), KernelRelease: "6.6.71", ReadFile: mapFiles(nil)}, "needs 6.7+", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := FindEmulator(tt.arch, tt.host)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoEmulator) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want ErrNoEmulator saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Register != tt.register || e.Interpreter != tt.interp || e.Name != QEMUName(tt.arch) {
				t.Errorf("got %+v", e)
			}
		})
	}
	// A qemu from an image's bin directory comes before PATH.
	img := EmulatorHost{
		LookPath: onPath("qemu-aarch64-static"), KernelRelease: "6.18.0", ReadFile: mapFiles(nil),
		Dirs: QEMUImageDirs("/cache/rootfs/sha256/abc"),
		Stat: func(p string) (fs.FileInfo, error) {
			if p == "/cache/rootfs/sha256/abc/usr/bin/qemu-aarch64-static" {
				return fakeExec{}, nil
			}
			return nil, fs.ErrNotExist
		},
	}
	if e, err := FindEmulator(arm64, img); err != nil || e.Interpreter != "/cache/rootfs/sha256/abc/usr/bin/qemu-aarch64-static" || !e.Register {
		t.Errorf("qemu from image: %+v, %v", e, err)
	}
	e, _ := FindEmulator(arm64, tests[0].host)
	if len(e.Env) != 1 || e.Env[0] != "QEMU_CPU=max,pauth-impdef=on" {
		t.Errorf("arm64 env %q", e.Env)
	}
}

// fakeExec is the FileInfo of an executable file.
type fakeExec struct{ fs.FileInfo }

func (fakeExec) Mode() fs.FileMode { return 0o755 }

func TestKernelAtLeast(t *testing.T) {
	for _, tt := range []struct {
		rel  string
		want bool
	}{{"6.7.0", true}, {"6.18.44-fc-v769", true}, {"6.6.71-linuxkit", false}, {"7.0", true}, {"5.19.1", false}, {"junk", false}, {"6.7-rc1", true}} {
		if got := kernelAtLeast(tt.rel, 6, 7); got != tt.want {
			t.Errorf("kernelAtLeast(%q) = %v", tt.rel, got)
		}
	}
}

func TestCPULimits(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		aff   int
		quota float64
		jobs  int
	}{
		{"no cgroup", nil, 8, 0, 8},
		{"unlimited", map[string]string{"/proc/self/cgroup": "0::/user.slice\n", "/sys/fs/cgroup/user.slice/cpu.max": "max 100000\n"}, 4, 0, 4},
		{"quota 1.5", map[string]string{"/proc/self/cgroup": "0::/ci/job\n", "/sys/fs/cgroup/ci/job/cpu.max": "150000 100000\n"}, 8, 1.5, 2},
		{"parent tighter", map[string]string{"/proc/self/cgroup": "0::/ci/job\n", "/sys/fs/cgroup/ci/job/cpu.max": "400000 100000", "/sys/fs/cgroup/ci/cpu.max": "100000 100000"}, 8, 1, 1},
		{"affinity tighter", map[string]string{"/proc/self/cgroup": "0::/x\n", "/sys/fs/cgroup/x/cpu.max": "800000 100000"}, 2, 8, 2},
		{"v1 only", map[string]string{"/proc/self/cgroup": "12:cpu,cpuacct:/docker/abc\n"}, 3, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := CgroupQuota(mapFiles(tt.files))
			if q != tt.quota {
				t.Errorf("quota %v, want %v", q, tt.quota)
			}
			if j := (CPULimit{Affinity: tt.aff, Quota: q}).Jobs(); j != tt.jobs {
				t.Errorf("jobs %d, want %d", j, tt.jobs)
			}
		})
	}
}

func TestUsernsBlocker(t *testing.T) {
	tests := []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"/proc/sys/user/max_user_namespaces": "63000\n"}, ""},
		{map[string]string{"/proc/sys/kernel/unprivileged_userns_clone": "0\n"}, "kernel.unprivileged_userns_clone=0"},
		{map[string]string{"/proc/sys/user/max_user_namespaces": "0\n"}, "sysctl -w user.max_user_namespaces"},
		{map[string]string{"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1\n"}, "AppArmor"},
		{map[string]string{"/proc/self/status": "Name:\tx\nSeccomp:\t2\n"}, "seccomp"},
	}
	for _, tt := range tests {
		got := UsernsBlocker(mapFiles(tt.files))
		if (tt.want == "" && got != "") || !strings.Contains(got, tt.want) {
			t.Errorf("UsernsBlocker(%v) = %q, want %q", tt.files, got, tt.want)
		}
	}
}

func TestSubIDs(t *testing.T) {
	file := "root:100000:65536\nlktest:165536:65536\n1002:231072:1000\n1002:300000:65536\nbad line\n"
	tests := []struct {
		name, uid string
		start     int
		ok        bool
		count     int
	}{
		{"lktest", "1001", 165536, true, 65536},
		{"other", "1002", 300000, true, 66536},
		{"nobody", "1003", 0, false, 0},
	}
	for _, tt := range tests {
		start, ok := SubIDRange(file, tt.name, tt.uid, 65535)
		if start != tt.start || ok != tt.ok {
			t.Errorf("SubIDRange(%s) = %d, %v; want %d, %v", tt.name, start, ok, tt.start, tt.ok)
		}
		if n := SubIDCount(file, tt.name, tt.uid); n != tt.count {
			t.Errorf("SubIDCount(%s) = %d, want %d", tt.name, n, tt.count)
		}
	}
}
