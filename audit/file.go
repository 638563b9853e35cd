package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cofferhq/coffer/logical"
)

// Options of the file device, as given to sys/audit/<path> (Vault's names,
// plus fsync).
const (
	// OptionFilePath is the file to append to, or "stdout", or "discard". Required.
	OptionFilePath = "file_path"
	// OptionMode is the file's permission bits in octal (default "0600");
	// "0000" keeps the mode of an existing file. Executable bits are refused.
	OptionMode = "mode"
	// OptionLogRaw logs every value in clear ("true"/"false", default false).
	OptionLogRaw = "log_raw"
	// OptionHMACAccessor hashes token accessors (default true).
	OptionHMACAccessor = "hmac_accessor"
	// OptionPrefix is written before each line.
	OptionPrefix = "prefix"
	// OptionFormat is the line format; only "json" is supported.
	OptionFormat = "format"
	// OptionElideListResponses logs a list response's number of keys instead
	// of the keys (default false).
	OptionElideListResponses = "elide_list_responses"
	// OptionFsync syncs the file after every line (default false). Coffer only.
	OptionFsync = "fsync"
)

// Special values of file_path.
const (
	FilePathStdout  = "stdout"
	FilePathDiscard = "discard"
)

const defaultFileMode fs.FileMode = 0o600

var fileOptions = []string{
	OptionFilePath, OptionMode, OptionLogRaw, OptionHMACAccessor, OptionPrefix,
	OptionFormat, OptionElideListResponses, OptionFsync,
}

type sinkKind int

const (
	sinkFile sinkKind = iota
	sinkStdout
	sinkDiscard
)

// fileDevice is the "file" audit device.
type fileDevice struct {
	name     string // the device's path in sys/audit, for messages
	filePath string
	kind     sinkKind
	mode     fs.FileMode // 0: keep the existing file's mode
	fsync    bool
	prefix   string
	fmt      *Formatter
	bufs     sync.Pool

	mu     sync.Mutex // guards file and closed; held for each write
	file   *os.File
	closed bool
}

var _ Device = (*fileDevice)(nil)

// NewFile returns the "file" audit device enabled at path (its name in
// sys/audit, such as "file/", used in messages) with Vault's file options
// (see the Option constants) and the audit salt. It opens the file at once,
// so a wrong file_path fails the enable rather than the first request. The
// file's directory must exist. Unknown options are refused, so a misspelt
// security option (log_raw, hmac_accessor) never passes silently.
func NewFile(path string, opts map[string]string, salt []byte) (Device, error) {
	if len(salt) == 0 {
		return nil, errors.New("audit: empty salt: core must pass the stored audit salt (see NewSalt)")
	}
	for k := range opts {
		if !slices.Contains(fileOptions, k) {
			return nil, logical.InvalidRequest("audit device %q: unknown option %q: the file device accepts %s",
				path, k, strings.Join(fileOptions, ", "))
		}
	}
	d := &fileDevice{name: path, mode: defaultFileMode, fmt: NewFormatter(salt)}
	d.bufs.New = func() any { return new(bytes.Buffer) }

	d.filePath = strings.TrimSpace(opts[OptionFilePath])
	switch {
	case d.filePath == "":
		return nil, logical.InvalidRequest("audit device %q: file_path is required: a file, \"stdout\" or \"discard\"", path)
	case strings.EqualFold(d.filePath, FilePathStdout):
		d.kind, d.filePath = sinkStdout, FilePathStdout
	case strings.EqualFold(d.filePath, FilePathDiscard):
		d.kind, d.filePath = sinkDiscard, FilePathDiscard
	}

	switch f := strings.TrimSpace(opts[OptionFormat]); f {
	case "", "json":
	case "jsonx":
		return nil, logical.InvalidRequest("audit device %q: format \"jsonx\" (XML) is not supported by Coffer: use format=json", path)
	default:
		return nil, logical.InvalidRequest("audit device %q: unknown format %q: use format=json", path, f)
	}

	if m := strings.TrimSpace(opts[OptionMode]); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o777 {
			return nil, logical.InvalidRequest("audit device %q: invalid mode %q: give octal permission bits such as 0600", path, m)
		}
		if v&0o111 != 0 {
			return nil, logical.InvalidRequest("audit device %q: mode %q is executable: an audit log must not be; use 0600 or 0640", path, m)
		}
		d.mode = fs.FileMode(v)
	}

	var err error
	if d.fmt.Raw, err = boolOption(path, opts, OptionLogRaw, false); err != nil {
		return nil, err
	}
	if d.fmt.HMACAccessor, err = boolOption(path, opts, OptionHMACAccessor, true); err != nil {
		return nil, err
	}
	if d.fmt.ElideListResponses, err = boolOption(path, opts, OptionElideListResponses, false); err != nil {
		return nil, err
	}
	if d.fsync, err = boolOption(path, opts, OptionFsync, false); err != nil {
		return nil, err
	}
	d.prefix = opts[OptionPrefix]

	switch d.kind {
	case sinkStdout:
		d.file = os.Stdout
	case sinkFile:
		if err := d.open(); err != nil {
			return nil, logical.InvalidRequest("%s", err.Error())
		}
	}
	return d, nil
}

func boolOption(path string, opts map[string]string, key string, def bool) (bool, error) {
	s, ok := opts[key]
	if !ok || strings.TrimSpace(s) == "" {
		return def, nil
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, logical.InvalidRequest("audit device %q: option %s=%q is not a boolean: use true or false", path, key, s)
	}
	return v, nil
}

// LogRequest writes the request line.
func (d *fileDevice) LogRequest(ctx context.Context, in *LogInput) error {
	return d.log(ctx, RequestType, in)
}

// LogResponse writes the response line.
func (d *fileDevice) LogResponse(ctx context.Context, in *LogInput) error {
	return d.log(ctx, ResponseType, in)
}

// Hash returns value hashed with the device's salt.
func (d *fileDevice) Hash(value string) string { return d.fmt.Hash(value) }

// log formats outside the lock, then writes the whole line with one write
// under it. The context is deliberately not consulted: a local write cannot
// be interrupted, and abandoning it because the client went away would drop
// the audit line of a request that may have been served.
func (d *fileDevice) log(_ context.Context, t EntryType, in *LogInput) error {
	if in == nil {
		return fmt.Errorf("audit device %q: nil log input (a bug in the caller)", d.name)
	}
	if d.kind == sinkDiscard {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.closed {
			return ErrDeviceClosed
		}
		return nil
	}
	buf := d.bufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			d.bufs.Put(buf)
		}
	}()
	buf.Reset()
	buf.WriteString(d.prefix)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d.fmt.Entry(t, in)); err != nil { // Encode ends the line with '\n'
		return fmt.Errorf("audit device %q: encode %s entry: %w (a value in the request or response cannot be rendered as JSON)", d.name, t, err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrDeviceClosed
	}
	return d.write(buf.Bytes())
}

// write appends line. On a failed write of a file it reopens the file once
// and retries, as Vault does (the descriptor may have gone bad); a torn
// first attempt is ended with a newline so the retried line stays whole.
// Called with mu held.
func (d *fileDevice) write(line []byte) error {
	if d.file == nil {
		if err := d.open(); err != nil {
			return err
		}
	}
	n, err := d.file.Write(line)
	if err == nil {
		return d.sync()
	}
	if d.kind == sinkStdout {
		return fmt.Errorf("audit device %q: write to stdout: %w: check where the server's standard output goes", d.name, err)
	}
	_ = d.file.Close() // the descriptor is being replaced; its write error is the one to report
	d.file = nil
	if oerr := d.open(); oerr != nil {
		return fmt.Errorf("audit device %q: write %s: %w; reopening failed too: %w", d.name, d.filePath, err, oerr)
	}
	if n > 0 {
		line = append([]byte{'\n'}, line...)
	}
	if _, err := d.file.Write(line); err != nil {
		return fmt.Errorf("audit device %q: write %s: %w: free space on its disk or fix the file, then send SIGHUP", d.name, d.filePath, err)
	}
	return d.sync()
}

func (d *fileDevice) sync() error {
	if !d.fsync || d.kind != sinkFile {
		return nil
	}
	if err := d.file.Sync(); err != nil {
		return fmt.Errorf("audit device %q: fsync %s: %w: check the disk", d.name, d.filePath, err)
	}
	return nil
}

// open opens the file for appending and applies the mode. Called with mu held
// (or before the device is shared).
func (d *fileDevice) open() error {
	mode := d.mode
	if mode == 0 {
		mode = defaultFileMode // used only if the file must be created
	}
	f, err := os.OpenFile(d.filePath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, mode)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("audit device %q: open %s: %w: create its directory or choose another file_path", d.name, d.filePath, err)
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("audit device %q: open %s: %w: let the server's user write there or choose another file_path", d.name, d.filePath, err)
		}
		return fmt.Errorf("audit device %q: open %s: %w: choose a writable regular file as file_path", d.name, d.filePath, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("audit device %q: stat %s: %w", d.name, d.filePath, err)
	}
	if fi.IsDir() {
		_ = f.Close()
		return fmt.Errorf("audit device %q: %s is a directory: choose a file as file_path", d.name, d.filePath)
	}
	// Only regular files get the mode: chmod on /dev/null or a FIFO would
	// change a node other programs share.
	if d.mode != 0 && fi.Mode().IsRegular() && fi.Mode().Perm() != d.mode {
		if err := f.Chmod(d.mode); err != nil {
			_ = f.Close()
			return fmt.Errorf("audit device %q: set mode %04o on %s: %w: fix the file's owner or set mode=0000 to keep its mode", d.name, d.mode, d.filePath, err)
		}
	}
	d.file = f
	return nil
}

// Reload closes the file and opens the path again. If the open fails the
// device stays without a file and every write tries to open it again.
func (d *fileDevice) Reload() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrDeviceClosed
	}
	if d.kind != sinkFile {
		return nil
	}
	var cerr error
	if d.file != nil {
		cerr = d.file.Close()
		d.file = nil
	}
	if err := d.open(); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("audit device %q: close %s before reopening: %w (the new file is open; lines written just before may be lost)", d.name, d.filePath, cerr)
	}
	return nil
}

// Close closes the file (never stdout). It is idempotent.
func (d *fileDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	f := d.file
	d.file = nil
	if f == nil || d.kind != sinkFile {
		return nil
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit device %q: close %s: %w: the last lines may not be on disk", d.name, d.filePath, err)
	}
	return nil
}
