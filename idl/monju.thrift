// Monju public API. This file is the contract that clients in every language
// generate from: fields may be added, never renamed or renumbered.

namespace cpp monju.api

// The request itself is wrong (bad key, value too large, malformed context).
// Retrying the same request will fail the same way.
exception InvalidRequest { 1: string why }

// Fewer live replicas than the request needs; nothing was attempted.
exception Unavailable { 1: string why, 2: i32 needed, 3: i32 alive }

// Replicas answered, but too few acknowledged. A write may still have reached
// some replicas (it is not rolled back); reading will show it or not.
exception QuorumFailed { 1: string why, 2: i32 needed, 3: i32 acked }

// The deadline passed before enough replicas answered. Outcome unknown.
exception TimedOut { 1: string why }

// Node to node only (forward_write): the node called does not replicate the
// key in its membership view either, so the two nodes' views differ (during a
// membership change, or with mismatched --peers). Nothing was written; another
// owner may take the write.
exception NotOwner { 1: string why }

enum WriteKind { PUT = 1, OVERWRITE = 2, REMOVE = 3 }

// A write that a node which does not replicate its key hands to an owner.
struct ForwardedWrite {
  1: WriteKind kind,
  2: string pk,
  3: string sk,
  4: binary value,    // PUT and OVERWRITE
  5: binary context,  // PUT and REMOVE
  6: i32 w,
  7: string forwarded_by,  // the forwarding node's id, for error messages
}

struct GetResult {
  1: bool found,
  2: list<binary> values,   // every current sibling; empty when not found
  3: binary context,        // opaque; pass to put/remove to replace what was read
}

struct WriteResult {
  1: binary context,        // covers exactly the version just written
  2: list<string> acked_by, // node ids that acknowledged by the time of the answer
  3: bool used_fallback,    // some acknowledgement came from a fallback node holding a hint
  4: list<string> hinted_for, // owners that missed the write and get it by hinted handoff
}

struct Item {
  1: string pk,
  2: string sk,
  3: list<binary> values,
  4: binary context,
}

struct QueryResult {
  1: list<Item> items,
  2: string next_start_sk,  // where the next page starts; empty at the end
}

service MonjuKV {
  // r / w of 0 mean the node's default.
  WriteResult put(1: string pk, 2: string sk, 3: binary value, 4: binary context, 5: i32 w)
    throws (1: InvalidRequest invalid, 2: Unavailable unavailable, 3: QuorumFailed quorum, 4: TimedOut timeout)

  // A put that needs no context: its version replaces every version the
  // coordinating replica holds for the key (DynamoDB's PutItem), in one round
  // trip. A version that replica has not seen yet (written concurrently
  // through another node) stays as a sibling. Forwarded to a replica of the
  // key when the node called is not one.
  WriteResult overwrite(1: string pk, 2: string sk, 3: binary value, 4: i32 w)
    throws (1: InvalidRequest invalid, 2: Unavailable unavailable, 3: QuorumFailed quorum, 4: TimedOut timeout)

  GetResult get(1: string pk, 2: string sk, 3: i32 r)
    throws (1: InvalidRequest invalid, 2: Unavailable unavailable, 3: QuorumFailed quorum, 4: TimedOut timeout)

  WriteResult remove(1: string pk, 2: string sk, 3: binary context, 4: i32 w)
    throws (1: InvalidRequest invalid, 2: Unavailable unavailable, 3: QuorumFailed quorum, 4: TimedOut timeout)

  // Node to node: a write forwarded by a node that does not replicate its
  // key. Coordinated here, as put, overwrite or remove, when this node
  // replicates the key; otherwise refused with NotOwner and never forwarded
  // again, so nodes whose views differ cannot pass a write back and forth.
  WriteResult forward_write(1: ForwardedWrite request)
    throws (1: InvalidRequest invalid, 2: Unavailable unavailable, 3: QuorumFailed quorum, 4: TimedOut timeout,
            5: NotOwner not_owner)

  // Items of one pk whose sk starts with sk_prefix, from start_sk (inclusive)
  // in the asked direction; limit 0 means 100, more than 1000 is invalid.
  QueryResult query(1: string pk, 2: string sk_prefix, 3: string start_sk, 4: i32 limit,
                    5: bool ascending, 6: i32 r)
    throws (1: InvalidRequest invalid, 2: Unavailable unavailable, 3: QuorumFailed quorum, 4: TimedOut timeout)
}
