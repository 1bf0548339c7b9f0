package sandbox

// Terminal runs a sandboxed command on a pseudo-terminal that Run
// allocates (Spec.Terminal), as docker run -t does: the command leads a
// session of its own whose controlling terminal is the pty's slave, which
// is also its standard input, output and error. Run copies Spec.Stdin to
// the master and what the master reads to Spec.Stdout; Spec.Stderr is not
// used. A Ctrl-C the user types reaches the command's foreground process
// group through the pty's line discipline, never the caller, whose own
// terminal should be in raw mode (MakeRaw) meanwhile.
//
// The slave belongs to the host's devpts, not to the sandbox's own
// /dev/pts instance: it is bound at /dev/console, where ttyname(3) (the
// tty command) finds it. /dev/tty, job control and curses programs work.
type Terminal struct {
	// Size is the terminal's window size at the start; zero leaves the
	// kernel's default (0x0, which curses programs take for 80x24).
	Size WindowSize
	// Resize, when not nil, delivers later sizes (the caller's SIGWINCH:
	// WatchSize); each is set on the pty, which signals the command's
	// foreground process group.
	Resize <-chan WindowSize
}

// WindowSize is a terminal's size in characters.
type WindowSize struct {
	Rows, Cols uint16
}
