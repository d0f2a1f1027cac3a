// Writing a file whole or not at all: the bytes go to a temporary file beside the path's target,
// flushed to disk, and commit() renames it over the target. Until then the target is untouched;
// an AtomicFile destroyed without commit() removes its temporary file. Several of them committed
// one after the other write a set of files that either all change or (if a write fails before
// the first commit) none does.
//
// Replacing an existing regular file keeps its permission bits (mode & 07777): a 0600 file stays
// 0600. A new file gets 0644 less the umask. The owner and group are the writer's. The rename
// replaces the name, not the file: a hard link to the old file keeps the old contents.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tinyquant::io {

// The file a write to `path` lands in: symbolic links followed (a dangling one to the file it
// would create). *special tells whether it exists as something other than a regular file; then
// `path` itself is returned, its links unresolved (a link of /proc to a pipe, as /dev/stdout may
// be, opens but names no path). Creates nothing; IoError if a link cannot be read or a path
// component cannot be inspected.
std::string resolve_write_target(const std::string& path, bool* special);

class AtomicFile {
 public:
  // Resolves `path`: symbolic links are followed (the file a link names is replaced, the link
  // stays). A target that exists as anything but a regular file (a directory, a device, a FIFO)
  // cannot be replaced by a rename: with allow_in_place its bytes are written to it at commit(),
  // in place, else it is an IoError. An empty path is an IoError. Nothing is created yet.
  AtomicFile(const std::string& path, bool allow_in_place);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Writes `bytes` to the temporary file and flushes it to disk; in place, keeps them for
  // commit(). Once only. Throws IoError naming the path. The temporary file is created here, in
  // the target's directory, as "<target>.tmp.<pid>.<n>" with n counting the process's writers
  // (".tq.tmp.<pid>.<n>" there when the target's file name is too long to take the suffix);
  // it must not exist yet (a file or link already under that name is left alone and the next n
  // tried), so writers of one target never share it and a planted link is never followed. If the
  // target exists as a regular file, the temporary file gets its permission bits before any
  // byte is written.
  void write(const std::vector<uint8_t>& bytes);
  // Renames the temporary file over the target (in place: writes the bytes to it), then flushes
  // the target's directory (best effort) so that the rename survives a crash. Throws IoError
  // naming the path; the temporary file is removed on failure.
  void commit();

  const std::string& path() const noexcept { return path_; }
  const std::string& target() const noexcept { return target_; }
  bool in_place() const noexcept { return in_place_; }
  // The name of the temporary file write() created (empty before, or if it created none). The
  // file is gone once committed or destroyed; the name stays.
  const std::string& temporary() const noexcept { return tmp_; }

 private:
  std::string path_, target_, tmp_;
  bool in_place_ = false, written_ = false, committed_ = false, removed_ = false;
  std::vector<uint8_t> pending_;  // in place only
};

}  // namespace tinyquant::io
