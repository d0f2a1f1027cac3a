#include "tinyquant/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "../detail/check.hpp"
#include "tinyquant/io/npy.hpp"

namespace tinyquant::io {

using detail::fail;

std::string resolve_write_target(const std::string& path, bool* special) {
  namespace fs = std::filesystem;
  *special = false;
  // Something that exists but is not a regular file (a FIFO, a device, a directory), reached
  // through any links, is written through the path itself: the links of /proc to pipes and
  // sockets (/dev/stdout -> /proc/self/fd/1 -> "pipe:[N]") open, but their text names no path.
  std::error_code through_ec;
  const fs::file_status through = fs::status(path, through_ec);
  if (!through_ec && through.type() != fs::file_type::regular) {
    *special = true;
    return path;
  }
  fs::path target = path;
  for (int hops = 0;; ++hops) {
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(target, ec);
    if (st.type() == fs::file_type::not_found) return target.string();
    if (ec)
      fail<IoError>("cannot write '{}': cannot inspect '{}': {}", path, target.string(),
                    ec.message());
    if (st.type() == fs::file_type::regular) return target.string();
    if (st.type() != fs::file_type::symlink) {
      *special = true;
      return target.string();
    }
    if (hops == 40) fail<IoError>("cannot write '{}': too many levels of symbolic links", path);
    const fs::path link = fs::read_symlink(target, ec);
    if (ec) fail<IoError>("cannot write '{}': cannot read the link '{}'", path, target.string());
    target = link.is_absolute() ? link : target.parent_path() / link;
  }
}

AtomicFile::AtomicFile(const std::string& path, bool allow_in_place) : path_(path) {
  if (path.empty()) fail<IoError>("cannot write a file: the path is empty");
  bool special = false;
  target_ = resolve_write_target(path, &special);
  if (special && !allow_in_place)
    fail<IoError>(
        "cannot write '{}': '{}' exists and is not a regular file (the file is written to a "
        "temporary file renamed over the path, which would replace it)",
        path, target_);
  in_place_ = special;
}

AtomicFile::~AtomicFile() {
  if (!tmp_.empty() && !committed_ && !removed_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const std::vector<uint8_t>& bytes) {
  if (written_) fail<IoError>("cannot write '{}': written twice", path_);
  written_ = true;
  if (in_place_) {
    pending_ = bytes;
    return;
  }
  // A fresh name for each writer: "<target>.tmp.<pid>.<n>", n counting the process's writers,
  // created with O_EXCL so that nothing already there, a file or a link planted under that name,
  // is opened, truncated or followed; a taken name moves on to the next n.
  static std::atomic<unsigned long> next{0};
  constexpr int kAttempts = 100;
  int fd = -1, open_err = 0;
  std::string name;
  for (int attempt = 0; attempt < kAttempts && fd < 0; ++attempt) {
    const std::string suffix = fmt::format(".tmp.{}.{}", static_cast<long>(::getpid()), next++);
    const std::filesystem::path target(target_);
    // A file name near NAME_MAX (255 bytes) leaves no room for the suffix: such a target gets a
    // short hidden name in its directory instead.
    name = target.filename().string().size() + suffix.size() <= 255
               ? target_ + suffix
               : (target.parent_path() / (".tq" + suffix)).string();
    fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    open_err = errno;
    if (fd < 0 && open_err != EEXIST) break;
  }
  if (fd < 0)  // tmp_ stays empty: nothing here is ours to remove
    fail<IoError>("cannot write '{}': cannot create the temporary file '{}': {}{}", path_, name,
                  std::strerror(open_err),
                  open_err == EEXIST ? fmt::format(" ({} names taken in a row)", kAttempts) : "");
  tmp_ = name;
  // Replacing a file keeps its permissions: the new file would otherwise get 0644 less the umask,
  // and a private (0600) file would become readable by all. Set before any byte is written.
  struct stat old {};
  if (::stat(target_.c_str(), &old) == 0 && S_ISREG(old.st_mode) &&
      ::fchmod(fd, old.st_mode & 07777) != 0) {
    const int err = errno;
    ::close(fd);
    fail<IoError>(
        "cannot write '{}': cannot give the temporary file '{}' the mode {:04o} of "
        "'{}': {}",
        path_, tmp_, old.st_mode & 07777, target_, std::strerror(err));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t put = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      const int err = errno;
      ::close(fd);
      fail<IoError>("cannot write '{}' (temporary file '{}'): {}", path_, tmp_, std::strerror(err));
    }
    done += static_cast<size_t>(put);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_err = errno;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed)
    fail<IoError>("cannot flush '{}' (temporary file '{}'): {}", path_, tmp_,
                  std::strerror(synced ? errno : sync_err));
}

void AtomicFile::commit() {
  if (!written_) fail<IoError>("cannot write '{}': nothing was written", path_);
  if (committed_) return;
  if (in_place_) {
    write_file_bytes(target_, pending_);
    committed_ = true;
    return;
  }
  if (std::rename(tmp_.c_str(), target_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    removed_ = true;
    fail<IoError>("cannot write '{}': cannot rename '{}' to '{}': {}", path_, tmp_, target_,
                  std::strerror(err));
  }
  committed_ = true;
  // The rename is atomic; flushing the directory makes it survive a power cut too. Best effort:
  // the file is already in place, and some file systems refuse fsync on a directory.
  const std::filesystem::path dir = std::filesystem::path(target_).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace tinyquant::io
