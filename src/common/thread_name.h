// NameThread: names a thread as top -H, perf and gdb show it, so that an
// operator can tell a node's threads apart (Linux keeps 15 bytes of it).
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>
#include <thread>

namespace monju {

inline void NameThread(std::thread& thread, std::string_view name) {
  const std::string kept(name.substr(0, 15));
  pthread_setname_np(thread.native_handle(), kept.c_str());
}

}  // namespace monju
