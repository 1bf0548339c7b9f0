// Package testenv lets tests say what they need from the machine. On a
// laptop a missing prerequisite skips the test with its reason; in CI,
// where LKBUILD_REQUIRE_ALL=1, the same test fails, so a green run means
// every test really ran.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireAllVar is the environment variable that turns skips into failures.
const RequireAllVar = "LKBUILD_REQUIRE_ALL"

// RequireAll reports whether missing prerequisites must fail tests.
func RequireAll() bool { return os.Getenv(RequireAllVar) == "1" }

// Need skips the test (or fails it under LKBUILD_REQUIRE_ALL=1) with why
// when ok is false.
func Need(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if RequireAll() {
		t.Fatalf("prerequisite missing (%s=1 makes this fatal): %s", RequireAllVar, why)
	}
	t.Skip("prerequisite missing: " + why)
}

// Getenv returns the variable's value, skipping or failing the test when
// it is unset.
func Getenv(t testing.TB, name, why string) string {
	t.Helper()
	v := os.Getenv(name)
	Need(t, v != "", name+" is not set: "+why)
	return v
}

// LookPath returns the path of a program, skipping or failing the test
// when it is not installed.
func LookPath(t testing.TB, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	Need(t, err == nil, prog+" is not installed (Debian package "+pkg+"; scripts/deps.sh installs it)")
	return p
}
