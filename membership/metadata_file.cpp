#include "metadata_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace monju {
namespace {

Status Errno(const std::string& what) { return Status::IOError(what + ": " + std::strerror(errno)); }

Status SyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::OK() : Errno("fsync " + path);
}

}  // namespace

Status MetadataFile::Save(const ClusterMetadata& md) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status::IOError("create " + dir_ + ": " + ec.message());
  const std::string tmp = path() + ".tmp";
  const std::string bytes = EncodeMetadata(md);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open " + tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Errno("write " + tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = Errno("fsync " + tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path().c_str()) != 0) return Errno("rename " + tmp);
  return SyncPath(dir_, O_RDONLY | O_DIRECTORY);
}

StatusOr<ClusterMetadata> MetadataFile::Load() const {
  std::ifstream in(path(), std::ios::binary);
  if (!in) return Status::NotFound("no cached metadata at " + path());
  std::stringstream ss;
  ss << in.rdbuf();
  return DecodeMetadata(ss.str());
}

}  // namespace monju
