package calibrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxLinks bounds a chain of symlinks, as the kernel's ELOOP does (40 on Linux).
const maxLinks = 40

// Target is the file a write to path lands on: path itself, or the file at the end
// of its symlinks (a ConfigMap's ..data link, /etc/alternatives, relative links and
// chains of them). Replacing the link itself by rename would cut it from its target:
// the managed file keeps the old content and the next `ln -sfn` deploy silently
// brings it back (field case 18). A link to a file not there yet resolves to that
// file's name, so a new file is created where the link points.
func Target(path string) (string, error) {
	p := path
	for range maxLinks {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return p, nil // to be created; whoever creates it says what is wrong
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(p), dest)
		}
		p = dest
	}
	return "", fmt.Errorf("%s: more than %d symlinks in a row (a loop?)", path, maxLinks)
}

// CheckWritable says, without changing anything, whether writeAtomic could write
// path: its target's folder exists and takes a new file, and the target is not a
// folder or other non-regular file. Calibrate asks before scoring, so that a typo in
// an output path costs nothing.
func CheckWritable(path string) error {
	t, err := Target(path)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(t); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file (%s)", t, kind(fi.Mode()))
	}
	dir := filepath.Dir(t)
	if fi, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: folder %s does not exist", path, dir)
		}
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: %s is not a folder", path, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(t)+".*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary name would only confuse
		}
		return fmt.Errorf("%s: cannot write in %s: %w", path, dir, err)
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return m.Type().String()
}

// writeAtomic replaces the file path leads to (Target) with data: a temporary file
// in the target's folder, then rename, so a reader (the daemon's watcher) sees the
// old file or the new one, never a part. An existing target keeps its mode, owner and
// group: a config owned root:adtrd 0640 must stay readable by the service after
// `sudo adtrd calibrate --write`. Where the owner cannot be kept (not root, another
// user's file), nothing is written. A new file gets mode.
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	t, err := Target(path)
	if err != nil {
		return err
	}
	var owner *syscall.Stat_t
	if fi, err := os.Stat(t); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file (%s)", t, kind(fi.Mode()))
		}
		mode = fi.Mode().Perm()
		owner, _ = fi.Sys().(*syscall.Stat_t)
	}
	f, err := os.CreateTemp(filepath.Dir(t), "."+filepath.Base(t)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if werr == nil && owner != nil {
		if fi, err := f.Stat(); err != nil {
			werr = err
		} else if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != owner.Uid || st.Gid != owner.Gid) {
			if err := f.Chown(int(owner.Uid), int(owner.Gid)); err != nil {
				werr = fmt.Errorf("%s: cannot keep its owner %d:%d (write it as that user or root): %w", t, owner.Uid, owner.Gid, err)
			}
		}
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, t)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}
