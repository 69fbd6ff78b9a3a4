/**
 * KafkaJS glue for the sticky assignor (../assignor.ts) and the reverse path: reading who owns
 * which partition from `admin.describeGroups()`.
 *
 * Each member announces its public URL and the partition numbers it holds in the `userData` of
 * its group metadata (./member-metadata.ts). The group leader's KafkaJS consumer calls `assign`
 * with every member's metadata; we assign partition NUMBERS and apply the same numbers to every
 * subscribed topic, which co-partitions them (the router's rt.room-events and rt.room-members).
 *
 * KafkaJS specifics this relies on:
 * - `protocol()` is called on every (re)join, so `owned()` is read fresh each rebalance. KafkaJS
 *   does not tell an assigner what it holds; the caller tracks it (e.g. from GROUP_JOIN).
 * - KafkaJS rebalances eagerly: every member stops fetching all its partitions during a
 *   rebalance, even those it keeps. Stickiness here means ownership (and so sockets) stays put.
 * - `AssignerProtocol.MemberMetadata.decode` throws on truncated input and can return a null
 *   `userData`; `MemberAssignment.decode` returns null for an empty buffer (a member that has
 *   joined but not yet synced). Both are handled here, never propagated.
 */
import { AssignerProtocol } from "kafkajs";
import type { Assigner, GroupMember, GroupMemberAssignment, PartitionAssigner } from "kafkajs";
import { assignSticky } from "../assignor.ts";
import {
  MEMBER_METADATA_LIMITS,
  decodeMemberMetadata,
  encodeMemberMetadata,
  type MemberMetadata,
  type MemberMetadataErrorCode,
} from "./member-metadata.ts";

export const STICKY_ASSIGNER_NAME = "rt-sticky";
export const STICKY_ASSIGNER_VERSION = 1;

export interface StickyAssignerOptions {
  /** This member's public WebSocket URL (ws: or wss:). Read on every join. */
  readonly url: () => string;
  /** Partition numbers this member holds now (its claims for stickiness). Read on every join. */
  readonly owned: () => readonly number[];
}

/**
 * A KafkaJS partition assigner named `rt-sticky`: balanced, sticky, co-partitioned (see
 * assignSticky). Every subscribed topic must have the same partition count; when they differ,
 * partitions up to the smallest count are assigned and a warning is logged. A member whose
 * metadata cannot be decoded gets no partitions (the router could not send users to it) and a
 * warning is logged. Throws from `protocol()` if `url()` is not a valid ws:/wss: URL, which
 * fails the join: a member must not join without an address.
 */
export function stickyAssigner(opts: StickyAssignerOptions): PartitionAssigner {
  return ({ cluster, logger }): Assigner => ({
    name: STICKY_ASSIGNER_NAME,
    version: STICKY_ASSIGNER_VERSION,

    protocol({ topics }) {
      // Past the limit, the highest claims are dropped: those partitions may move, nothing breaks.
      const owned = [...new Set(opts.owned())]
        .sort((a, b) => a - b)
        .slice(0, MEMBER_METADATA_LIMITS.ownedMax);
      return {
        name: STICKY_ASSIGNER_NAME,
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: STICKY_ASSIGNER_VERSION,
          topics,
          userData: encodeMemberMetadata({ url: opts.url(), owned }),
        }),
      };
    },

    async assign({ members, topics }) {
      const counts = topics.map((topic) => ({
        topic,
        partitions: cluster.findTopicPartitionMetadata(topic).length,
      }));
      const partitionCount = counts.length === 0 ? 0 : Math.min(...counts.map((c) => c.partitions));
      if (counts.some((c) => c.partitions !== partitionCount)) {
        logger.warn("rt-sticky: subscribed topics differ in partition count; assigning the smallest", {
          counts,
          partitionCount,
        });
      }

      const decoded = members.map((member) => ({ member, meta: readMemberMetadata(member) }));
      for (const { member, meta } of decoded) {
        if (!meta.ok) {
          logger.warn("rt-sticky: member metadata unreadable; member gets no partitions", {
            memberId: member.memberId,
            code: meta.code,
            reason: meta.message,
          });
        }
      }
      const plan = assignSticky({
        partitionCount,
        members: decoded.flatMap(({ member, meta }) =>
          meta.ok ? [{ memberId: member.memberId, previous: meta.value.owned }] : [],
        ),
      });

      return [...members]
        .sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0))
        .map((member): GroupMemberAssignment => {
          const partitions = plan.get(member.memberId) ?? [];
          // Null prototype: a topic may legally be named "__proto__".
          const assignment: Record<string, number[]> = Object.create(null);
          if (partitions.length > 0) for (const topic of topics) assignment[topic] = [...partitions];
          return {
            memberId: member.memberId,
            memberAssignment: AssignerProtocol.MemberAssignment.encode({
              version: STICKY_ASSIGNER_VERSION,
              assignment,
              userData: Buffer.alloc(0),
            }),
          };
        });
    },
  });
}

/** The parts of a KafkaJS `GroupDescription` (from `admin.describeGroups`) that ownership needs. */
export interface GroupLike {
  /** The group's chosen assignment protocol; empty when the group has no members. */
  readonly protocol?: string;
  readonly members: ReadonlyArray<{
    readonly memberId: string;
    readonly memberMetadata: Buffer;
    readonly memberAssignment: Buffer;
  }>;
}

export interface PartitionOwner {
  readonly memberId: string;
  readonly url: string;
}

export const OWNERSHIP_PROBLEMS = {
  wrongProtocol: "wrong_protocol",
  metadataUnreadable: "metadata_unreadable",
  assignmentUnreadable: "assignment_unreadable",
  duplicateOwner: "duplicate_owner",
} as const;
export type OwnershipProblemCode = (typeof OWNERSHIP_PROBLEMS)[keyof typeof OWNERSHIP_PROBLEMS];

export interface OwnershipProblem {
  /** The member concerned; null for a problem of the whole group. */
  readonly memberId: string | null;
  readonly code: OwnershipProblemCode;
  readonly message: string;
}

export interface GroupOwnership {
  /** Partition of `topic` -> its owner. Partitions nobody (readable) owns are absent. */
  readonly owners: Map<number, PartitionOwner>;
  readonly problems: OwnershipProblem[];
}

/**
 * Reads partition ownership of `topic` from a described group. Never throws: a member whose
 * metadata or assignment cannot be decoded is skipped and reported in `problems`; so is a group
 * running another protocol (its metadata is not ours). A member with an empty assignment (joined,
 * not yet synced) owns nothing and is not a problem. Should two members claim one partition, the
 * smallest memberId keeps it and the other claim is reported. During a rebalance the result is
 * what the last completed generation assigned; callers check `state` on the description if they
 * need a stable answer.
 */
export function ownershipFromGroup(group: GroupLike, topic: string): GroupOwnership {
  const owners = new Map<number, PartitionOwner>();
  const problems: OwnershipProblem[] = [];
  if (group.protocol !== undefined && group.protocol !== "" && group.protocol !== STICKY_ASSIGNER_NAME) {
    problems.push({
      memberId: null,
      code: OWNERSHIP_PROBLEMS.wrongProtocol,
      message: `group uses protocol ${JSON.stringify(group.protocol)}, not ${STICKY_ASSIGNER_NAME}`,
    });
    return { owners, problems };
  }
  const members = [...group.members].sort((a, b) =>
    a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0,
  );
  for (const member of members) {
    const { memberId } = member;
    const meta = readMemberMetadata(member);
    if (!meta.ok) {
      problems.push({ memberId, code: OWNERSHIP_PROBLEMS.metadataUnreadable, message: meta.message });
      continue;
    }
    const partitions = readAssignedPartitions(member.memberAssignment, topic);
    if (!partitions.ok) {
      problems.push({ memberId, code: OWNERSHIP_PROBLEMS.assignmentUnreadable, message: partitions.message });
      continue;
    }
    for (const partition of partitions.value) {
      const current = owners.get(partition);
      if (current !== undefined) {
        problems.push({
          memberId,
          code: OWNERSHIP_PROBLEMS.duplicateOwner,
          message: `partition ${partition} already owned by ${current.memberId}`,
        });
        continue;
      }
      owners.set(partition, { memberId, url: meta.value.url });
    }
  }
  return { owners, problems };
}

type Read<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      readonly code: MemberMetadataErrorCode | "bad_protocol_metadata";
      readonly message: string;
    };

/** Decodes the Kafka consumer-protocol metadata, then our userData inside it. Never throws. */
function readMemberMetadata(member: Pick<GroupMember, "memberMetadata">): Read<MemberMetadata> {
  let userData: Buffer | null | undefined;
  try {
    userData = AssignerProtocol.MemberMetadata.decode(member.memberMetadata)?.userData;
  } catch (error) {
    return { ok: false, code: "bad_protocol_metadata", message: describe(error) };
  }
  return decodeMemberMetadata(userData);
}

/** Partitions of `topic` in an encoded member assignment; none for an empty buffer. Never throws. */
function readAssignedPartitions(buffer: Buffer, topic: string): Read<number[]> {
  if (buffer.length === 0) return { ok: true, value: [] };
  try {
    const decoded = AssignerProtocol.MemberAssignment.decode(buffer);
    const assignment = decoded?.assignment ?? {};
    const partitions: unknown = Object.hasOwn(assignment, topic) ? assignment[topic] : [];
    if (!Array.isArray(partitions) || !partitions.every((p) => Number.isInteger(p) && p >= 0)) {
      return { ok: false, code: "bad_protocol_metadata", message: `bad partition list for ${topic}` };
    }
    return { ok: true, value: partitions as number[] };
  } catch (error) {
    return { ok: false, code: "bad_protocol_metadata", message: describe(error) };
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
