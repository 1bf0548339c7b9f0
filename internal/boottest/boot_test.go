package boottest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestQemuArgs(t *testing.T) {
	tests := []struct {
		name    string
		spec    BootSpec
		want    []string // must appear in order as neighbours
		wantErr bool
	}{
		{"defaults", BootSpec{Kernel: "/k", Initramfs: "/i"}, []string{"-m", "512", "-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0 panic=-1"}, false},
		{"append and memory", BootSpec{Kernel: "/k", Initramfs: "/i", Append: " quiet loglevel=3 ", MemoryMB: 256}, []string{"-m", "256", "-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0 panic=-1 quiet loglevel=3"}, false},
		{"aarch64", BootSpec{Kernel: "/k", Initramfs: "/i", Arch: "aarch64"}, []string{"-M", "virt", "-cpu", "cortex-a57"}, false},
		{"aarch64 console", BootSpec{Kernel: "/k", Initramfs: "/i", Arch: "aarch64"}, []string{"-append", "console=ttyAMA0 panic=-1"}, false},
		{"riscv64", BootSpec{Kernel: "/k", Initramfs: "/i", Arch: "riscv64"}, []string{"-M", "virt", "-bios", "default"}, false},
		{"unknown arch", BootSpec{Kernel: "/k", Initramfs: "/i", Arch: "s390x"}, nil, true},
		{"no kernel", BootSpec{Initramfs: "/i"}, nil, true},
		{"no initramfs", BootSpec{Kernel: "/k"}, nil, true},
		{"negative memory", BootSpec{Kernel: "/k", Initramfs: "/i", MemoryMB: -1}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := qemuArgs(tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			joined := "\x00" + strings.Join(args, "\x00") + "\x00"
			if !strings.Contains(joined, "\x00"+strings.Join(tt.want, "\x00")+"\x00") {
				t.Errorf("args %q do not contain %q", args, tt.want)
			}
			// Only the serial console on stdout, no network, no reboot.
			for _, want := range [][]string{{"-nodefaults"}, {"-display", "none"}, {"-serial", "stdio"}, {"-nic", "none"}, {"-no-reboot"}} {
				if !strings.Contains(joined, "\x00"+strings.Join(want, "\x00")+"\x00") {
					t.Errorf("args %q lack %q", args, want)
				}
			}
		})
	}
}

func TestParseConsole(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want Result
	}{
		{"empty", "", Result{}},
		{"all markers", "[    1.0] Run /init as init process\nBOOTTEST start\nBOOTTEST insmod crc7 ok\n" +
			"insmod: can't insert '/x.ko': No such file or directory\nBOOTTEST insmod x failed: 254\n" +
			"BOOTTEST command 0 exit 0\nBOOTTEST command 1 exit 3\nBOOTTEST done\n[    2.0] reboot: Power down\n",
			Result{Started: true, Done: true, Modules: []ModuleResult{{Name: "crc7", OK: true}, {Name: "x", Status: 254}}, Commands: []int{0, 3}}},
		{"kernel text in front of a marker", "BOOTTEST start\r\n[    3.1] random: crng init done\rBOOTTEST insmod a ok\r\n",
			Result{Started: true, Modules: []ModuleResult{{Name: "a", OK: true}}}},
		{"garbled markers are ignored", "BOOTTEST insmod a maybe\nBOOTTEST insmod b failed: x\nBOOTTEST command 0 exit\n", Result{}},
		{"panic", "[    2.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n[    2.3] ---[ end Kernel panic - not syncing: Attempted to kill init! ]---\n",
			Result{Panic: "[    2.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseConsole(tt.log)
			tt.want.Console = tt.log
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConsoleWatch(t *testing.T) {
	var copy strings.Builder
	c := newConsoleWatch(&copy)
	// The marker arrives split across writes, as serial output does.
	for _, p := range []string{"boot\r\nBOOTTEST do", "ne\r", "\nafter\n"} {
		if n, err := c.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	select {
	case <-c.done:
	default:
		t.Error("done marker not seen")
	}
	if want := "boot\r\nBOOTTEST done\r\nafter\n"; copy.String() != want || c.log.String() != want {
		t.Errorf("copy %q, log %q, want %q", copy.String(), c.log.String(), want)
	}
}

func TestConsoleTail(t *testing.T) {
	if got := consoleTail(""); !strings.Contains(got, "empty") {
		t.Errorf("empty console: %q", got)
	}
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i%7) + "line\n")
	}
	got := consoleTail(b.String())
	if n := strings.Count(got, "\n\t"); n != tailLines {
		t.Errorf("%d lines quoted, want %d:\n%s", n, tailLines, got)
	}
}

func TestBootMissingQEMU(t *testing.T) {
	_, err := Boot(context.Background(), BootSpec{Kernel: "/k", Initramfs: "/i", QEMU: "qemu-system-lkbuild-nosuch"})
	if !errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("err = %v, want exec.ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Errorf("error names no package: %v", err)
	}
}

// fakeQEMU writes a shell script that stands in for qemu.
func fakeQEMU(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-qemu")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBootFakeQEMU(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		canceled bool // cancel the context before Boot
		wantErr  error
		inErr    []string
	}{
		{"powers off", `printf 'BOOTTEST start\r\nBOOTTEST done\r\n[ 1.0] reboot: Power down\r\n'`, false, nil, nil},
		// An x86_64 kernel without ACPI: poweroff -f halts, qemu runs on.
		{"halts", `printf 'BOOTTEST start\r\nBOOTTEST done\r\n[ 1.0] reboot: Power off not available: System halted instead\r\n'; exec sleep 600`, false, ErrNoPowerOff,
			[]string{"still running", "the kernel halted", "CONFIG_ACPI"}},
		{"halts (6.1)", `printf 'BOOTTEST done\r\n[ 1.0] reboot: System halted\r\n'; exec sleep 600`, false, ErrNoPowerOff,
			[]string{"the kernel halted"}},
		{"hangs after done", `printf 'BOOTTEST done\r\n'; exec sleep 600`, false, ErrNoPowerOff, []string{"still running", "after BOOTTEST done"}},
		{"power down before done", `printf 'reboot: Power down\r\nBOOTTEST done\r\n'`, false, ErrNoPowerOff, []string{"never printed"}},
		{"fails after done", `printf 'BOOTTEST done\r\nreboot: Power down\r\n'; echo 'qemu: oops' >&2; exit 1`, false, ErrNoPowerOff,
			[]string{"exit status 1", "qemu: oops"}},
		{"exits early", `printf 'BOOTTEST start\r\nlast words\r\n'; echo 'qemu: bad kernel' >&2; exit 1`, false, ErrNotDone,
			[]string{"exit status 1", "qemu: bad kernel", "last words"}},
		{"panics", `printf 'x\r\n[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n'`, false, ErrKernelPanic,
			[]string{"Unable to mount root fs"}},
		{"hangs", `printf 'stuck here\r\n'; exec sleep 600`, false, ErrTimeout, []string{"timed out after 1s", "stuck here"}},
		{"canceled", `exec sleep 600`, true, context.Canceled, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.canceled {
				cancel()
			}
			began := time.Now()
			res, err := Boot(ctx, BootSpec{Kernel: "/k", Initramfs: "/i", Timeout: time.Second, QEMU: fakeQEMU(t, tt.script)})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if res.PoweredOff != (err == nil) {
				t.Errorf("PoweredOff %v with error %v", res.PoweredOff, err)
			}
			// The boot's timeout bounds the wait for the power-off too.
			if took := time.Since(began); took > 8*time.Second {
				t.Errorf("Boot took %s with a 1 s timeout", took)
			}
			for _, s := range tt.inErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestGunzipped(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "Image")
	if err := os.WriteFile(plain, []byte("MZ kernel image"), 0o644); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte("MZ kernel image"))
	zw.Close()
	gz := filepath.Join(dir, "Image.gz")
	if err := os.WriteFile(gz, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{plain, gz} {
		p, cleanup, err := gunzipped(in)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != "MZ kernel image" {
			t.Errorf("%s: read %q", in, b)
		}
		cleanup()
		if in == gz {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("cleanup left %s", p)
			}
		}
	}
	if _, _, err := gunzipped(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing kernel was accepted")
	}
}
