package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// openLog creates the build's log, named by its tag.
func (b *build) openLog() error {
	dir := b.env.Cache.Logs()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	tag := b.t.Ref[strings.LastIndex(b.t.Ref, ":")+1:]
	prefix := b.logPrefix
	if b.plan.Tool != "" {
		// A tool image has the kernel's tags.
		prefix += b.plan.Tool + "-"
	}
	b.res.Log = filepath.Join(dir, prefix+tag+".log")
	f, err := os.Create(b.res.Log)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	b.logF = f
	return nil
}

// logf writes a line of lkbuild's own to the log.
func (b *build) logf(format string, args ...any) {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	fmt.Fprintf(b.logF, "### "+format+"\n", args...)
}

// logWriter is the log as an io.Writer for a command's output.
type logWriter struct{ b *build }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.logMu.Lock()
	defer w.b.logMu.Unlock()
	return w.b.logF.Write(p)
}

// objectEstimate is the object count of the last build of this config, or 0.
func (b *build) objectEstimate() int64 {
	data, err := os.ReadFile(b.statsFile())
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

func (b *build) saveObjectCount(n int64) {
	p := b.statsFile()
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		os.WriteFile(p, []byte(strconv.FormatInt(n, 10)+"\n"), 0o644)
	}
}

func (b *build) statsFile() string {
	key := b.plan.Version.String() + "\n" + b.plan.Arch.Uname + "\n"
	if b.plan.Tool != "" {
		key = "tool " + b.plan.Tool + "\n" + key // a kernel's key stays as it was
	}
	s := sha256.Sum256(append(append([]byte(key), b.plan.Config...), strings.Join(b.plan.Patches, "\n")...))
	return filepath.Join(b.env.Cache.Stats(), hex.EncodeToString(s[:8])+".objects")
}

// lineWriter calls line for each complete line written to it.
type lineWriter struct {
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

// objectLine matches kbuild's short output for an object it compiles.
var objectLine = regexp.MustCompile(`^\s+(CC|AS)(\s+\[M\])?\s+\S+\.o$`)
