// Members and metadata steps shared by the membership unit tests.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "cluster_metadata.h"
#include "metadata_commands.h"

namespace monju::test_support {

// Member n<i>: client port 7000+i, peer port 9000+i, Raft on 8000+i, holding
// its own ring tokens.
inline Member MakeMember(int i, MemberState state = MemberState::kNormal, uint32_t vnodes = 64) {
  Member m;
  m.id = "n" + std::to_string(i);
  m.host = "127.0.0.1";
  m.port = static_cast<uint16_t>(7000 + i);
  m.peer_port = static_cast<uint16_t>(9000 + i);
  m.raft_address = "127.0.0.1:" + std::to_string(8000 + i);
  m.raft_id = RaftIdOf(m.id);
  m.vnodes = vnodes;
  m.token_owner = m.id;
  m.state = state;
  return m;
}

// The metadata after `c`, which must apply.
inline ClusterMetadata ApplyOrFail(const ClusterMetadata& md, const MetadataCommand& c) {
  ClusterMetadata next;
  Status s = ApplyCommand(md, c, &next);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return next;
}

}  // namespace monju::test_support
