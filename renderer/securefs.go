package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// confinedFS is kustomize's on-disk file system restricted to one root: every path is made
// absolute, cleaned and resolved through symbolic links, and must stay under the root.
// Kustomize's own load restrictor only keeps files under the kustomization directory and lets
// bases name any directory; this keeps the whole build inside the repository copy, which is
// what `../base` overlays need and no more. Writes are refused: a build only reads.
type confinedFS struct {
	disk filesys.FileSystem
	root string
	// onRead sees every file read, before it is returned.
	onRead func(path string, data []byte) error
	// escaped is the first path refused for leaving the root.
	escaped error
}

func newConfinedFS(root string, onRead func(string, []byte) error) (*confinedFS, error) {
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, failWith("Request", "the repository copy %s: %v", root, err)
	}
	return &confinedFS{disk: filesys.MakeFsOnDisk(), root: filepath.Clean(resolved), onRead: onRead}, nil
}

// outsideRootError names the path relative to the root, never the host path beyond it.
type outsideRootError struct{ path string }

func (e *outsideRootError) Error() string {
	return fmt.Sprintf("%s (relative to the repository root) is outside the repository: only files of the repository are loaded", e.path)
}

func (c *confinedFS) relative(path string) string {
	if rel, err := filepath.Rel(c.root, path); err == nil {
		return rel
	}
	return path
}

// check returns the absolute path if it lies under the root.
func (c *confinedFS) check(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	abs = filepath.Clean(abs)
	escapes := !c.under(abs)
	if !escapes {
		// The copy holds no symbolic links, but a link could only be followed here if it did.
		resolved, err := filepath.EvalSymlinks(abs)
		escapes = err == nil && !c.under(resolved)
	}
	if escapes {
		err := failWith("OutsideRoot", "%s", (&outsideRootError{path: c.relative(abs)}).Error())
		if c.escaped == nil {
			c.escaped = err
		}
		return "", err
	}
	return abs, nil
}

func (c *confinedFS) under(path string) bool {
	return path == c.root || strings.HasPrefix(path, c.root+string(filepath.Separator))
}

func errReadOnly(op string) error {
	return failWith("Build", "%s: the build may not write files", op)
}

func (c *confinedFS) Create(string) (filesys.File, error) { return nil, errReadOnly("create") }
func (c *confinedFS) Mkdir(string) error                  { return errReadOnly("mkdir") }
func (c *confinedFS) MkdirAll(string) error               { return errReadOnly("mkdir") }
func (c *confinedFS) RemoveAll(string) error              { return errReadOnly("remove") }
func (c *confinedFS) WriteFile(string, []byte) error      { return errReadOnly("write") }

func (c *confinedFS) Open(path string) (filesys.File, error) {
	abs, err := c.check(path)
	if err != nil {
		return nil, err
	}
	return c.disk.Open(abs)
}

func (c *confinedFS) IsDir(path string) bool {
	abs, err := c.check(path)
	return err == nil && c.disk.IsDir(abs)
}

func (c *confinedFS) ReadDir(path string) ([]string, error) {
	abs, err := c.check(path)
	if err != nil {
		return nil, err
	}
	return c.disk.ReadDir(abs)
}

func (c *confinedFS) CleanedAbs(path string) (filesys.ConfirmedDir, string, error) {
	dir, file, err := c.disk.CleanedAbs(path)
	if err != nil {
		return "", "", err
	}
	if _, err := c.check(dir.Join(file)); err != nil {
		return "", "", err
	}
	return dir, file, nil
}

func (c *confinedFS) Exists(path string) bool {
	abs, err := c.check(path)
	return err == nil && c.disk.Exists(abs)
}

func (c *confinedFS) Glob(pattern string) ([]string, error) {
	abs, err := c.check(pattern)
	if err != nil {
		return nil, err
	}
	matches, err := c.disk.Glob(abs)
	if err != nil {
		return nil, err
	}
	kept := matches[:0]
	for _, m := range matches {
		if _, err := c.check(m); err == nil {
			kept = append(kept, m)
		}
	}
	return kept, nil
}

func (c *confinedFS) ReadFile(path string) ([]byte, error) {
	abs, err := c.check(path)
	if err != nil {
		return nil, err
	}
	info, err := os.Lstat(abs)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, failWith("Build", "%s is not a regular file", c.relative(abs))
	}
	data, err := c.disk.ReadFile(abs)
	if err != nil {
		return nil, err
	}
	if c.onRead != nil {
		if err := c.onRead(c.relative(abs), data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

func (c *confinedFS) Walk(path string, walkFn filepath.WalkFunc) error {
	abs, err := c.check(path)
	if err != nil {
		return err
	}
	return c.disk.Walk(abs, walkFn)
}
