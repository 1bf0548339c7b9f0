package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// staleLine is a line of testdata/kernel's config-x86_64 that kconfig
// writes back when it is missing: a symbol that defaults to n, so that
// make olddefconfig only restores its "is not set" line.
const staleLine = "# CONFIG_SOUND is not set\n"

// kconfig checks lkbuild kconfig on the cache the first build filled (the
// source), so it fetches nothing; it installs common/Dockerfile's packages
// and libncurses-dev (for make menuconfig) from the builder's /mirror once:
// a command in the sandbox with the patched tree and the stored config in
// place, its exit status; the refresh of a stored config that lacks a
// line, as a CI gate (--check) and for real; and the interactive shell on
// a pty, driven by tmux, with an edit in make menuconfig.
func (e *env) kconfig(t *testing.T, cache string) {
	kdir := e.checkout(t, func(kdir string) {
		file := filepath.Join(kdir, series, "config-x86_64")
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "\n"+staleLine) {
			t.Fatalf("%s lacks %q", file, staleLine)
		}
		if err := os.WriteFile(file, []byte(strings.Replace(string(data), "\n"+staleLine, "\n", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	stored := filepath.Join(kdir, series, "config-x86_64")
	file := "kernel/" + series + "/config-x86_64"
	args := func(extra ...string) []string {
		return slices.Concat([]string{"--cache-dir", cache, "kconfig", "--kernel-dir", kdir, "--arch", "x86_64",
			"--source-mirror", e.mirror, "--insecure-registry"}, e.builderFlag(), extra)
	}

	t.Run("command", func(t *testing.T) {
		tree := "/linux-" + version
		script := fmt.Sprintf(`test -f %[1]s/arch/x86/configs/x86_64_defconfig &&
cmp %[1]s/arch/x86/configs/x86_64_defconfig /src/%[2]s/config-x86_64 &&
grep -q lkbuild-e2e %[1]s/init/main.c &&
touch /src/written-in-kconfig && exit 3`, tree, series)
		r := e.lkbuild(t, nil, args("--series", series, "--", "sh", "-c", script)...)
		t.Logf("kconfig -- CMD: %s", r.elapsed.Round(100*time.Millisecond))
		if r.code != 3 {
			t.Fatalf("exit %d, want the command's 3 (the tree, its defconfig, the patch and /src):\n%s%s", r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(kdir, "written-in-kconfig")); err != nil {
			t.Errorf("/src is not the kernel directory, read-write: %v", err)
		}
	})

	t.Run("refresh", func(t *testing.T) {
		before, err := os.ReadFile(stored)
		if err != nil {
			t.Fatal(err)
		}
		r := e.lkbuild(t, nil, args("--refresh", "--check")...)
		t.Logf("kconfig --refresh --check (stale): %s", r.elapsed.Round(100*time.Millisecond))
		if r.code != 1 || !strings.Contains(r.stderr, file+" not final") {
			t.Errorf("--refresh --check of a stale config: exit %d, want 1 naming %s:\n%s", r.code, file, r.stderr)
		}
		// The checkout's path is absolute: the diff names the file so.
		wantDiff := "--- " + stored + "\n+++ " + stored + "\n"
		if !strings.Contains(r.stdout, wantDiff) || !strings.Contains(r.stdout, "\n+"+staleLine) {
			t.Errorf("--check printed no diff adding %q:\n%s", staleLine, r.stdout)
		}
		if now, _ := os.ReadFile(stored); string(now) != string(before) {
			t.Errorf("--check changed %s", file)
		}

		r = e.lkbuild(t, nil, args("--refresh")...)
		t.Logf("kconfig --refresh: %s", r.elapsed.Round(100*time.Millisecond))
		if r.code != 0 || !strings.Contains(r.stderr, file+" refreshed (CONFIG_SOUND)") || !strings.Contains(r.stdout, "\n+"+staleLine) {
			t.Errorf("--refresh: exit %d, want 0, a diff and a note on CONFIG_SOUND:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		orig, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata", "kernel", series, "config-x86_64"))
		if err != nil {
			t.Fatal(err)
		}
		if now, _ := os.ReadFile(stored); string(now) != string(orig) {
			t.Errorf("--refresh wrote a %s that is not testdata's", file)
		}
	})

	// An edit with make menuconfig in the shell, saved to /src: final, so
	// that --refresh --check (the next build's own check) passes.
	t.Run("terminal", func(t *testing.T) {
		e.kconfigTerminal(t, args("--series", series))
		if data, _ := os.ReadFile(stored); !strings.Contains(string(data), "\n# CONFIG_CRC4 is not set\n") {
			t.Fatalf("%s does not hold menuconfig's edit (CRC4 off)", stored)
		}
		r := e.lkbuild(t, nil, args("--refresh", "--check")...)
		t.Logf("kconfig --refresh --check (menuconfig's config): %s", r.elapsed.Round(100*time.Millisecond))
		if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, file+" is final") {
			t.Errorf("--check of the config menuconfig saved: exit %d, want 0 and no diff:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
}

// kconfigTerminal drives the interactive shell in tmux: the prompt, the
// window size and a resize, Ctrl-C reaching the shell's command and not
// lkbuild, tty, an edit with make menuconfig saved to /src, and the
// shell's exit status as lkbuild's.
func (e *env) kconfigTerminal(t *testing.T, args []string) {
	tmuxBin := testenv.LookPath(t, "tmux", "tmux")
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	script := filepath.Join(dir, "kconfig.sh")
	quoted := []string{shellQuote(e.bin)}
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	body := "#!/bin/sh\nexport DOCKER_CONFIG=" + shellQuote(e.dockerConfig) + "\n" + strings.Join(quoted, " ") + "\necho EXIT=$?\nsleep 600\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tmux := func(a ...string) string {
		t.Helper()
		out, err := exec.Command(tmuxBin, append([]string{"-S", sock}, a...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", a, err, out)
		}
		return string(out)
	}
	began := time.Now()
	tmux("new-session", "-d", "-s", "kc", "-x", "100", "-y", "30", script)
	defer exec.Command(tmuxBin, "-S", sock, "kill-server").Run()
	screen := func() string { return tmux("capture-pane", "-p", "-t", "kc") }
	// await waits until the screen matches re, and fails with it otherwise.
	await := func(what string, re *regexp.Regexp) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			s := strings.TrimRight(screen(), "\n ")
			if re.MatchString(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the screen never matched %s:\n%s", what, re, s)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	prompt := regexp.MustCompile(`(?s)thrown away at exit\n.*#$`)
	await("the shell's prompt", prompt)
	t.Logf("kconfig start to shell: %s", time.Since(began).Round(100*time.Millisecond))

	tmux("send-keys", "-t", "kc", "clear; stty size", "Enter")
	await("the window size", regexp.MustCompile(`(?m)^30 100$`))
	tmux("resize-window", "-t", "kc", "-x", "120", "-y", "40")
	tmux("send-keys", "-t", "kc", "clear; stty size", "Enter")
	await("the window size after a resize", regexp.MustCompile(`(?m)^40 120$`))

	// Ctrl-C stops the shell's command; lkbuild, the shell and the
	// sandbox stay.
	tmux("send-keys", "-t", "kc", "clear; sleep 100", "Enter")
	time.Sleep(time.Second)
	tmux("send-keys", "-t", "kc", "C-c")
	tmux("send-keys", "-t", "kc", "echo sleep=$?", "Enter")
	await("Ctrl-C to the shell's command", regexp.MustCompile(`(?m)^sleep=130$`))
	tmux("send-keys", "-t", "kc", "clear; cd /linux-"+version+" && test -f arch/x86/configs/x86_64_defconfig && echo tree=ok", "Enter")
	await("the tree, from the shell", regexp.MustCompile(`(?m)^tree=ok$`))
	tmux("send-keys", "-t", "kc", "clear; tty", "Enter")
	await("tty naming the terminal", regexp.MustCompile(`(?m)^/dev/console$`))

	// The docs' workflow: make menuconfig (ncurses installed from the
	// builder's repository) on the stored config, CRC4 (a module) turned
	// off through its search, saved, and copied back to /src.
	tmux("send-keys", "-t", "kc", "clear; make defconfig >/dev/null && make menuconfig", "Enter")
	await("make menuconfig's screen", regexp.MustCompile(`Linux/x86 `+version+` Kernel Configuration`))
	tmux("send-keys", "-t", "kc", "/")
	await("menuconfig's search", regexp.MustCompile(`Search Configuration Parameter`))
	tmux("send-keys", "-t", "kc", "CRC4", "Enter")
	await("the search's result", regexp.MustCompile(`Symbol: CRC4 \[=m\]`))
	tmux("send-keys", "-t", "kc", "1")
	await("the jump to CRC4", regexp.MustCompile(`<M> CRC4 functions`))
	tmux("send-keys", "-t", "kc", "n")
	await("CRC4 off", regexp.MustCompile(`< > CRC4 functions`))
	tmux("send-keys", "-t", "kc", "Escape", "Escape")
	await("back to the search", regexp.MustCompile(`Symbol: CRC4 \[=n\]`))
	tmux("send-keys", "-t", "kc", "Escape", "Escape")
	await("back to the main menu", regexp.MustCompile(`Press <Esc><Esc> to exit`))
	tmux("send-keys", "-t", "kc", "Escape", "Escape")
	await("the question to save", regexp.MustCompile(`Do you wish to save your new configuration\?`))
	tmux("send-keys", "-t", "kc", "Enter")
	await("menuconfig's end", regexp.MustCompile(`(?m)^\*\*\* End of the configuration\.`))
	tmux("send-keys", "-t", "kc", "clear; grep CRC4 .config && cp .config /src/"+series+"/config-x86_64 && echo saved", "Enter")
	await("the config saved to /src", regexp.MustCompile(`(?m)^# CONFIG_CRC4 is not set\nsaved$`))

	tmux("send-keys", "-t", "kc", "exit 7", "Enter")
	await("the shell's exit status as lkbuild's", regexp.MustCompile(`(?m)^EXIT=7$`))
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
