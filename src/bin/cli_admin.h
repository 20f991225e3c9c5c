// `monju admin ...`: membership of a Raft-managed cluster, through a node's
// "membership" service (idl/membership.thrift). join, leave, replace and
// abort start a change and then follow it (members() once a second) until it
// is over, printing its progress, unless --no-wait. Errors are thrown as the
// service's MembershipError (the caller maps them to exit codes).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "MonjuMembership.h"
#include "cli_args.h"

namespace monju::cli {

int RunAdmin(membership::MonjuMembershipClient& client, const CliOptions& options);

// Rendering (pure).
std::string HumanMembers(const membership::MembersReply& reply);
nlohmann::json JsonMembers(const membership::MembersReply& reply);
std::string HumanRing(const membership::RingReply& reply);
nlohmann::json JsonRing(const membership::RingReply& reply);
// One line of a change's progress, e.g. "join n4 (streaming): n4 12/86 partitions, 3.1 MiB".
std::string ProgressLine(const membership::MembersReply& reply);

}  // namespace monju::cli
