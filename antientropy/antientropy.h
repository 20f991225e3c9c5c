// Anti-entropy: replicas converge on their own, at a cost that follows the
// difference. The component's public header: the node includes this one.
//
// What it guarantees
// - Every partition this node stores has a Merkle tree (PartitionTrees) that
//   equals the digests the store's items carry after every commit: writes,
//   deletes, merges and tombstone reaps update it on the store's writer
//   thread before they return; at start it is rebuilt from the items; it is
//   checked against them before exchanges once
//   `verify_interval` has passed, and rebuilt when found inconsistent.
// - An exchange of one partition with one co-owner (RunExchange over two
//   ExchangePeers) moves only what differs: the root hash when in sync; else
//   hashes of differing subtrees, the keys under differing nodes, and the
//   versions each side lacks, merged by clock through the Replica. Nothing is
//   deleted; tombstones travel like versions, except that tombstones past the
//   reaper's grace are withheld from a replica holding nothing of the key.
// - The scheduler (AntiEntropyScheduler) exchanges every partition with
//   every co-owner in turn, at most once per interval, with a shared byte
//   budget and a cap on concurrent exchanges; it can be paused, runs a pass
//   on demand (`monju repair`) and counts what it did.
// - No Thrift type appears here: the node serves LocalExchangePeer over
//   MonjuReplica and reaches peers through its own ExchangePeer and
//   ExchangeDirectory implementations (src/net/exchange_peers.h).
//
// The pieces, each with its own contract:
//   merkle_tree.h      the tree of one partition (pure; no I/O)
//   partition_trees.h  the trees of a store, kept in step with its commits
//   exchange.h         the protocol (RunExchange, ExchangePeer, limits)
//   local_peer.h       this node's side of exchanges (trees, item digests, replica)
//   throttle.h         the shared byte budget
//   scheduler.h        background exchanges, repair now, pause, counters
//
// Wiring (src/net/node.cpp): open the store with ClockDigest; construct
// PartitionTrees over it and Install() before serving; a LocalExchangePeer
// over the replica and the trees; an AntiEntropyScheduler over that, the
// node's ExchangeDirectory and a Clock; Start(). Stop the scheduler before
// the server, Uninstall() the trees before closing the store.
#pragma once

#include "exchange.h"
#include "local_peer.h"
#include "merkle_tree.h"
#include "partition_trees.h"
#include "scheduler.h"
#include "throttle.h"
