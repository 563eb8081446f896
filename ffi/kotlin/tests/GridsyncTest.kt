// The phone core driven from Kotlin through the generated bindings (the
// same files an Android app compiles), against the library built for the
// host and a real gridsync-server: what a field worker's phone does, and
// the typed errors an app acts on. Run by ffi/tests/kotlin.rs.
package org.gridsync.test

import java.io.File
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout
import org.gridsync.core.*
import org.gridsync.ffi.*

val ALL_TESTS = listOf(
    Test("a key must be 32 bytes, and a wrong key or a rekey is handled") { keysAndRekey() },
    Test("records of every field kind sync and reach who may see them") { recordsSyncAndReachWhoMaySeeThem() },
    Test("lists page by a stable cursor with counts for a filter") { listsPageByACursor() },
    Test("supervision records are written by the roles they belong to") { supervisionRecords() },
    Test("every step offered is taken and every step withheld is refused with its reason") { allowedActions() },
    Test("a dispute goes up its levels and a conflict is settled by its content") { aDisputeGoesUpItsLevels() },
    Test("bad input names the field") { badInputNamesTheField() },
    Test("a sync waiting on the network is cancelled and the store stays usable") { aSyncIsCancelled() },
    Test("the listener hears local saves, what a sync brings and a wipe") { theListenerHears() },
    Test("a revoked phone is refused and wiped") { aRevokedPhoneIsWiped() },
    Test("signing out waits for unsynced work") { signingOutWaitsForUnsyncedWork() },
    Test("names and labels come in Chinese") { namesAndLabels() },
    Test("the village leader's figures are counted on the phone") { figuresOnThePhone() },
    Test("with the server gone a sync fails with Network and the records stay") { offlineKeepsRecords() },
    Test("a bundle carries records to another phone") { aBundleCarriesRecords() },
    Test("a progress callback that throws does not stop a sync") { aThrowingCallbackDoesNotStopASync() },
    Test("repairing a record nothing was refused for changes nothing") { repairWithNothingRefused() },
    Test("a photo travels after its record, encrypted on the phone, and reaches the village leader") { photosTravelAfterTheirRecords() },
    Test("a relay bundle goes to the server through another phone that cannot read it") { aRelayBundleGoesThroughAnotherPhone() },
)

/**
 * What a background sync worker (Android's WorkManager, iOS's
 * BGTaskScheduler) decides after one run; docs/mobile.md quotes this.
 */
enum class WorkResult { SUCCESS, RETRY, ENROLL }

suspend fun backgroundSync(core: GridCore, progress: SyncProgress): WorkResult = try {
    core.sync(progress)
    WorkResult.SUCCESS
} catch (e: ApiException.Network) {
    WorkResult.RETRY // offline or the server is down: the records stay on the phone
} catch (e: ApiException.Cancelled) {
    WorkResult.RETRY // the system stopped the worker: what finished is kept
} catch (e: ApiException.NotAuthorized) {
    WorkResult.ENROLL // e.wiped: the device was revoked and the store is now empty
} catch (e: ApiException.NotEnrolled) {
    WorkResult.ENROLL
}

/** A distinctive string that must never appear in the store file in clear. */
const val SECRET_TEXT = "山体滑坡"

/** 2026-11-02 08:00 Beijing time, a Monday. */
const val DAY0 = 1_793_577_600_000L
const val DAY = 86_400_000L

/** One input of each of the five field record kinds. */
fun fieldInputs(now: Long): Map<RecordKind, RecordInput> = linkedMapOf(
    RecordKind.PATROL to RecordInput.Patrol(Patrol(
        slot = PatrolSlot.MORNING,
        startedAt = now - 3_600_000,
        endedAt = now,
        route = listOf(GeoPoint(lat = 33.91, lon = 106.30), GeoPoint(lat = 33.92, lon = 106.31)),
        findings = "沿河堤巡查一遍",
        hazardIds = emptyList(),
    )),
    RecordKind.HAZARD to RecordInput.Hazard(HazardFields(
        category = HazardCategory.GEOLOGICAL,
        location = Location(text = "后山三组上方", gps = GeoPoint(lat = 33.9, lon = 106.3)),
        description = "${SECRET_TEXT}隐患，坡面有裂缝",
    )),
    RecordKind.VISIT to RecordInput.Visit(Visit(
        target = VisitTarget.FLOATING_POPULATION,
        subject = "出租房租户赵五",
        householdId = null,
        visitedAt = now,
        findings = "登记在册",
        followUpNeeded = true,
    )),
    RecordKind.HOUSEHOLD to RecordInput.Household(Household(
        headName = "王大山",
        address = "一组18号",
        tenHouseholdGroup = "第三联防组",
        members = mapOf("m1" to Member(
            name = "王小河",
            relation = "子女",
            category = PersonCategory.RESIDENT,
            idNumber = "11010519491231002X",
            guardian = null,
        )),
        machinery = mapOf("a1" to Asset(description = "拖拉机", identifier = "甘L-12345")),
        vehicles = emptyMap(),
        facilities = emptyMap(),
        notes = "",
    )),
    RecordKind.DISPUTE to RecordInput.Dispute(DisputeFields(
        parties = listOf("李甲", "李乙"),
        category = DisputeCategory.LAND,
        summary = "${SECRET_TEXT}后两户地界纠纷",
        foundAt = now,
    )),
)

fun disputeInput(now: Long) = fieldInputs(now).getValue(RecordKind.DISPUTE)
fun hazardInput(now: Long) = fieldInputs(now).getValue(RecordKind.HAZARD)

fun patrolInput(slot: PatrolSlot, start: Long) = RecordInput.Patrol(Patrol(
    slot = slot,
    startedAt = start,
    endedAt = start + 1_800_000,
    route = emptyList(),
    findings = "正常",
    hazardIds = emptyList(),
))

val Record.dispute: Dispute get() = (body as RecordBody.Dispute).v1

fun Record.offered(action: ActionKind): ActionCheck = actions.single { it.action == action }

suspend fun GridCore.all(query: RecordQuery = RecordQuery()): List<RecordSummary> =
    listRecords(query.copy(limit = 1000u)).items

/** Sync and insist the server refused nothing. */
suspend fun GridCore.syncClean(): SyncStats = sync(Progress()).also {
    assertEquals(emptyList(), it.rejected, "the server refused: ${it.rejected}")
}

/** Neither the store nor its WAL holds record text, field names or the SQLite header in clear. */
fun assertNoPlaintext(db: File) {
    for (f in listOf(db, File(db.path + "-wal"))) {
        if (!f.exists()) continue
        val data = f.readBytes()
        for (needle in listOf(SECRET_TEXT, "summary", "head_name")) {
            assertTrue(indexOf(data, needle.toByteArray()) < 0, "${f.name} holds \"$needle\" in clear")
        }
        assertTrue(indexOf(data, "SQLite format 3".toByteArray()) != 0, "${f.name} is a plain SQLite file")
    }
}

private fun indexOf(haystack: ByteArray, needle: ByteArray): Int {
    outer@ for (i in 0..haystack.size - needle.size) {
        for (j in needle.indices) if (haystack[i + j] != needle[j]) continue@outer
        return i
    }
    return -1
}

/** The app's listener: keeps what it heard (called on a core thread). */
class Heard : RecordsListener {
    val changes = CopyOnWriteArrayList<RecordsChanged>()
    override fun recordsChanged(change: RecordsChanged) { changes.add(change) }
    fun take(): List<Pair<ChangeSource, List<String>>> =
        changes.map { it.source to it.ids }.also { changes.clear() }
}

suspend fun Ctx.keysAndRekey() {
    val e = assertFailsWith<ApiException.InvalidInput> { GridCore.open(File(dir, "s.db").path, ByteArray(5)) }
    assertEquals("key", e.field)

    val db = File(dir, "phone.db")
    val key = newKey()
    var core = phone("phone", "gm-t01-v05-g1", key)
    val rec = core.createRecord(null, hazardInput(nowMs()))
    core.close()
    val wrong = assertFailsWith<ApiException.WrongKey> { GridCore.open(db.path, newKey()) }
    assertContains(wrong.messageZh, "密钥")

    // The app moves the store to a new key (a new keystore entry).
    core = GridCore.open(db.path, key)
    val newKey = newKey()
    core.rekey(newKey)
    core.close()
    assertFailsWith<ApiException.WrongKey> { GridCore.open(db.path, key) }
    core = GridCore.open(db.path, newKey)
    assertEquals(rec.id, core.getRecord(rec.id).id)
    assertEquals("gm-t01-v05-g1", core.enrollment()?.userId)
    assertEquals("key", assertFailsWith<ApiException.InvalidInput> { core.rekey(ByteArray(3)) }.field)
    assertNoPlaintext(db)
    core.close()
}

/**
 * A grid manager records all five field kinds offline, syncs, reopens the
 * store and reads them back; the village leader's phone receives them, a
 * manager of another group does not.
 */
suspend fun Ctx.recordsSyncAndReachWhoMaySeeThem() {
    val db = File(dir, "phone1.db")
    val key = newKey()
    var core = GridCore.open(db.path, key)

    // Not enrolled yet: nothing can be authored or synced.
    assertFailsWith<ApiException.NotEnrolled> { core.createRecord(null, fieldInputs(nowMs()).getValue(RecordKind.PATROL)) }
    assertFailsWith<ApiException.NotEnrolled> { core.sync(Progress()) }
    // A wrong code names the field.
    val bad = assertFailsWith<ApiException.InvalidInput> { core.enroll(server.url, "ABCDEFGH2345", "手机") }
    assertEquals("code", bad.field)

    val info = core.enroll(server.url, server.code("gm-t01-v01-g1"), "一号手机")
    assertEquals("gm-t01-v01-g1", info.userId)
    assertEquals("t01/v01/g1", info.grid)
    assertEquals("grid_manager", info.role)
    assertEquals(info.deviceId, core.enrollment()?.deviceId)

    // Offline work: create every kind, append history, edit, delete.
    val now = nowMs()
    val created = linkedMapOf<RecordKind, Record>()
    for ((kind, input) in fieldInputs(now)) {
        val rec = core.createRecord(null, input)
        assertEquals(kind, rec.kind)
        assertEquals("t01/v01/g1", rec.grid)
        assertEquals("gm-t01-v01-g1", rec.author)
        created[kind] = rec
    }
    val disputeId = created.getValue(RecordKind.DISPUTE).id
    val hazardId = created.getValue(RecordKind.HAZARD).id
    assertEquals(RecordStatus.REGISTERED, created.getValue(RecordKind.DISPUTE).status)
    core.appendDisputeEvent(disputeId, DisputeAction.Found(note = "排查发现"))
    var rec = core.appendDisputeEvent(disputeId, DisputeAction.FollowUp(note = "约双方到村委会"))
    assertEquals(
        listOf(DisputeAction.Found(note = "排查发现"), DisputeAction.FollowUp(note = "约双方到村委会")),
        rec.dispute.events.map { it.action },
    )
    assertEquals(listOf(rec.dispute.events[0].id), rec.dispute.events[1].parents)
    assertEquals(RecordStatus.IN_PROGRESS, rec.status)
    assertEquals("化解中", rec.statusLabelZh)
    assertEquals(DisputeLevel.VILLAGE, rec.level)
    assertEquals(listOf("排查发现", "跟进"), rec.timeline.map { it.labelZh })
    rec = core.appendHazardEvent(hazardId, HazardAction.Step(note = "设置警示牌"))
    assertEquals(RecordStatus.HANDLING, rec.status)
    assertFailsWith<ApiException.InvalidInput> { core.appendHazardEvent(disputeId, HazardAction.Step(note = "x")) }

    // An edit keeps the history the phone has; the input carries none.
    val hazard = core.updateRecord(hazardId, RecordInput.Hazard(HazardFields(
        category = HazardCategory.GEOLOGICAL,
        location = Location(text = "后山三组上方50米", gps = null),
        description = "${SECRET_TEXT}隐患，裂缝加宽",
    )))
    assertEquals(RecordStatus.HANDLING, hazard.status, "the handling step survives the edit")
    assertEquals("后山三组上方50米", (hazard.body as RecordBody.Hazard).v1.location.text)

    val visit = created.getValue(RecordKind.VISIT)
    val changed = (visit.body as RecordBody.Visit).v1.copy(findings = "已复查，情况正常", followUpNeeded = false)
    rec = core.updateRecord(visit.id, RecordInput.Visit(changed))
    assertEquals(RecordStatus.DONE, rec.status)
    assertEquals("已复查，情况正常", (rec.body as RecordBody.Visit).v1.findings)
    val wrongKind = assertFailsWith<ApiException.InvalidInput> { core.updateRecord(visit.id, disputeInput(now)) }
    assertEquals("kind", wrongKind.field)

    val extra = core.createRecord(null, fieldInputs(now).getValue(RecordKind.PATROL))
    core.deleteRecord(extra.id)
    assertTrue(core.getRecord(extra.id).deleted)
    assertFailsWith<ApiException.NotFound> { core.getRecord("00000000-0000-4000-8000-000000000000") }

    // Lists: kind, status, grid subtree, date range, search, deleted.
    assertEquals(5, core.all().size)
    assertEquals(6, core.all(RecordQuery(includeDeleted = true)).size)
    assertEquals(listOf(disputeId), core.all(RecordQuery(kind = RecordKind.DISPUTE)).map { it.id })
    assertEquals(
        listOf(created.getValue(RecordKind.HOUSEHOLD).title),
        core.all(RecordQuery(search = "王小河")).map { it.title },
    )
    assertEquals(listOf(hazardId), core.all(RecordQuery(status = RecordStatus.HANDLING)).map { it.id })
    assertEquals(5, core.all(RecordQuery(grid = "t01/v01")).size)
    assertEquals(emptyList(), core.all(RecordQuery(grid = "t01/v02")))
    // Only the patrol (started an hour ago) occurred before now.
    assertEquals(listOf(RecordKind.PATROL), core.all(RecordQuery(untilMs = now - 1000)).map { it.kind })
    assertEquals(4, core.all(RecordQuery(fromMs = now - 1000)).size)
    assertTrue(core.pendingChanges() > 0u)
    assertNoPlaintext(db)

    // Sync, with progress and log lines.
    val progress = Progress()
    val stats = core.sync(progress)
    assertEquals(6uL, stats.recordsSent, "$stats")
    assertEquals(emptyList(), stats.rejected)
    assertTrue(progress.updates.isNotEmpty(), "no progress reported")
    assertEquals(6uL, progress.updates.last().recordsSent)
    assertEquals("sync started", progress.logs.first())
    assertTrue(progress.logs.last().startsWith("sync done"), "${progress.logs}")
    assertEquals(0uL, core.pendingChanges())
    val device = server.devices().getValue(info.deviceId)
    assertEquals("gm-t01-v01-g1", device.first)
    assertNotNull(device.third, "the server records the device's last sync")

    // Reopen and read everything back.
    val before = created.mapValues { (_, r) -> core.getRecord(r.id) }
    core.close()
    core = GridCore.open(db.path, key)
    assertEquals(5uL, core.countRecords())
    assertTrue(core.integrityOk())
    for (r in before.values) assertEquals(r, core.getRecord(r.id))
    assertEquals("gm-t01-v01-g1", core.enrollment()?.userId)
    assertNoPlaintext(db)

    // The village leader's phone receives every record of the village, and
    // the sync says which.
    val leader = phone("leader", "vl-t01-v01")
    val got = leader.syncClean()
    assertTrue(got.recordsReceived >= 5uL)
    assertTrue(got.changed.containsAll(created.values.map { it.id }), "${got.changed}")
    val ids = leader.all().map { it.id }.toSet()
    assertTrue(ids.containsAll(created.values.map { it.id }))
    assertEquals(before.getValue(RecordKind.DISPUTE).dispute, leader.getRecord(disputeId).dispute)
    val household = leader.getRecord(created.getValue(RecordKind.HOUSEHOLD).id).body as RecordBody.Household
    assertEquals("王小河", household.v1.members.getValue("m1").name)

    // A grid manager of another group receives none of them.
    val other = phone("other", "gm-t01-v01-g2")
    other.sync(Progress())
    val otherIds = other.all(RecordQuery(includeDeleted = true)).map { it.id }.toSet()
    assertTrue(otherIds.intersect(created.values.map { it.id }.toSet()).isEmpty())
    core.close()
}

/**
 * A village leader pages through her village's patrols three at a time;
 * between two pages a sync brings newer ones, which sort to the top. The
 * next page still starts right after the last row seen: nothing shown
 * twice or skipped, and the total counts the newcomers.
 */
suspend fun Ctx.listsPageByACursor() {
    val gm = phone("gm", "gm-t04-v01-g1")
    val leader = phone("leader", "vl-t04-v01")
    for (day in 0L until 3L) for (slot in listOf(PatrolSlot.MORNING, PatrolSlot.EVENING)) {
        gm.createRecord(null, patrolInput(slot, DAY0 + day * DAY + slot.ordinal * 3_600_000L))
    }
    gm.syncClean()
    leader.syncClean()
    val q = RecordQuery(kind = RecordKind.PATROL, limit = 3u)
    val everything = leader.all(RecordQuery(kind = RecordKind.PATROL)).map { it.id }
    assertEquals(6, everything.size)
    assertEquals(6uL, leader.countMatching(RecordQuery(kind = RecordKind.PATROL)))
    assertEquals(0uL, leader.countMatching(RecordQuery(kind = RecordKind.DISPUTE)))

    val first = leader.listRecords(q)
    assertEquals(6uL, first.total)
    assertEquals(3, first.items.size)
    val cursor = assertNotNull(first.next)
    for (i in 0L until 2L) gm.createRecord(null, patrolInput(PatrolSlot.MORNING, DAY0 + (10 + i) * DAY))
    gm.syncClean()
    leader.syncClean()
    val second = leader.listRecords(q.copy(after = cursor))
    assertEquals(8uL, second.total, "the total counts the newcomers")
    assertEquals(everything, (first.items + second.items).map { it.id }, "the six rows as they were, in order")
    assertNull(second.next, "the older end is reached")
    val bad = assertFailsWith<ApiException.InvalidInput> { leader.listRecords(q.copy(after = "yesterday")) }
    assertEquals("after", bad.field)
}

/**
 * The village leader records the weekly meeting, the township chief the
 * monthly review and report; a grid manager may write neither, a submitted
 * report is final, and each reaches the phones whose scope holds it.
 */
suspend fun Ctx.supervisionRecords() {
    val gm = phone("gm", "gm-t03-v01-g1")
    val leader = phone("leader", "vl-t03-v01")
    val chief = phone("chief", "tc-t03-1")
    val now = nowMs()

    val dispute = gm.createRecord(null, disputeInput(now))
    gm.syncClean()
    leader.syncClean()

    val meetingInput = VillageMeeting(
        heldAt = now,
        attendees = listOf("村支书", "三组网格员"),
        gridSummaries = mapOf("t03/v01/g1" to GridWeekNote(figures = mapOf("patrols" to 12L), note = "一组本周巡查正常")),
        disputesReviewed = listOf(dispute.id),
        decisions = "地界纠纷下周召集双方调解",
    )
    val meeting = leader.createRecord(null, RecordInput.VillageMeeting(meetingInput))
    assertEquals(RecordKind.VILLAGE_MEETING, meeting.kind)
    assertEquals("t03/v01", meeting.grid)
    assertEquals(RecordStatus.HELD, meeting.status)
    // A grid manager may not hold the village's meeting.
    assertFailsWith<ApiException.NotAllowed> { gm.createRecord("t03/v01", RecordInput.VillageMeeting(meetingInput)) }
    // A group of another village is not this meeting's to note.
    val wrongGroup = assertFailsWith<ApiException.InvalidInput> {
        leader.createRecord(null, RecordInput.VillageMeeting(meetingInput.copy(
            gridSummaries = mapOf("t03/v02/g1" to GridWeekNote(figures = emptyMap(), note = "")),
        )))
    }
    assertEquals("grid_summaries[t03/v02/g1]", wrongGroup.field)

    val review = chief.createRecord(null, RecordInput.TownshipReview(TownshipReview(
        month = "2025-05",
        heldAt = now,
        attendees = listOf("镇长", "综治办主任"),
        disputesReviewed = listOf(dispute.id),
        decisions = "土地纠纷由司法所牵头",
    )))
    assertEquals(RecordKind.TOWNSHIP_REVIEW, review.kind)
    assertEquals("t03", review.grid)
    val draft = MonthlyReport(month = "2025-05", figures = mapOf("disputes" to 1L), narrative = "本月排查纠纷一起", submittedAt = null)
    var report = chief.createRecord(null, RecordInput.MonthlyReport(draft))
    assertEquals(RecordStatus.DRAFT, report.status)
    report = chief.updateRecord(report.id, RecordInput.MonthlyReport(draft.copy(submittedAt = nowMs())))
    assertEquals(RecordStatus.SUBMITTED, report.status)
    val edit = report.offered(ActionKind.EDIT)
    assertFalse(edit.allowed, "a submitted report offers no edit")
    val final = assertFailsWith<ApiException.NotAllowed> {
        chief.updateRecord(report.id, RecordInput.MonthlyReport(draft.copy(narrative = "改写", submittedAt = nowMs())))
    }
    assertEquals("submitted_at", final.field)
    assertEquals(edit.reasonZh, final.messageZh)
    assertFailsWith<ApiException.NotAllowed> { gm.createRecord("t03", RecordInput.MonthlyReport(draft)) }

    leader.syncClean()
    chief.syncClean()
    val onChief = chief.all(RecordQuery(kind = RecordKind.VILLAGE_MEETING)).map { it.id }
    assertEquals(listOf(meeting.id), onChief)
    assertEquals(meeting.body, chief.getRecord(meeting.id).body)
    val submitted = chief.all(RecordQuery(kind = RecordKind.MONTHLY_REPORT)).single()
    assertEquals(RecordStatus.SUBMITTED, submitted.status)
    assertNull(submitted.rejection)
    // Owned by the village and the township, not a group: not on the grid manager's phone.
    gm.sync(Progress())
    assertEquals(listOf(dispute.id), gm.all().map { it.id })
}

/** The step an app takes for an offered action on a dispute. */
fun stepFor(check: ActionCheck): DisputeAction? = when (check.action) {
    ActionKind.DISPUTE_CLASSIFY -> DisputeAction.Classified(category = DisputeCategory.NEIGHBOUR, note = "实为邻里纠纷")
    ActionKind.DISPUTE_SET_PLAN -> DisputeAction.PlanSet(plan = "组织双方调解", team = listOf("村调委会"))
    ActionKind.DISPUTE_FOLLOW_UP -> DisputeAction.FollowUp(note = "电话回访")
    ActionKind.DISPUTE_STABILIZE -> DisputeAction.Stabilized(note = "专人稳控")
    ActionKind.DISPUTE_ESCALATE -> check.escalateTo?.let { DisputeAction.Escalated(to = it, note = "本级无法化解") }
    ActionKind.DISPUTE_RESOLVE -> DisputeAction.Resolved(note = "双方和解")
    else -> null
}

/**
 * For a grid manager, a village leader and a township chief, every step a
 * fresh village dispute offers: a step shown as allowed is saved and taken
 * by the server; a step shown as withheld is refused on the phone with the
 * same Chinese reason, and nothing is saved.
 */
suspend fun Ctx.allowedActions() {
    val gm = phone("gm", "gm-t05-v01-g1")
    val phones = listOf(gm, phone("leader", "vl-t05-v01"), phone("chief", "tc-t05-1"))
    val steps = listOf(
        ActionKind.DISPUTE_CLASSIFY, ActionKind.DISPUTE_SET_PLAN, ActionKind.DISPUTE_FOLLOW_UP,
        ActionKind.DISPUTE_STABILIZE, ActionKind.DISPUTE_ESCALATE, ActionKind.DISPUTE_RESOLVE,
    )
    // One dispute per step, so each is judged on a fresh village dispute.
    val ids = steps.map { gm.createRecord(null, disputeInput(nowMs())).id }
    gm.syncClean()
    var allowed = 0
    var withheld = 0
    for (p in phones) {
        p.syncClean()
        for ((step, id) in steps.zip(ids)) {
            val view = p.getRecord(id)
            val check = view.offered(step)
            assertEquals(if (check.allowed) null else check.reasonZh, check.reasonZh)
            val action = assertNotNull(stepFor(check), "$step has a step")
            try {
                val after = p.appendDisputeEvent(id, action)
                assertTrue(check.allowed, "$step was withheld but saved")
                assertEquals(view.timeline.size + 1, after.timeline.size)
                allowed++
            } catch (e: ApiException.NotAllowed) {
                assertFalse(check.allowed, "$step was offered but refused: ${e.messageZh}")
                assertEquals(check.reasonZh, e.messageZh)
                assertEquals(view.timeline.size, p.getRecord(id).timeline.size, "nothing saved")
                withheld++
            }
        }
        p.syncClean()
    }
    assertTrue(allowed >= 6 && withheld >= 4, "allowed $allowed, withheld $withheld")
    val fresh = gm.createRecord(null, disputeInput(nowMs()))
    assertFalse(fresh.offered(ActionKind.DISPUTE_SET_PLAN).allowed)
    assertContains(fresh.offered(ActionKind.DISPUTE_SET_PLAN).reasonZh!!, "制定化解方案")
    assertFalse(fresh.offered(ActionKind.DISPUTE_SETTLE).allowed, "no conflict to settle")
    assertEquals(DisputeLevel.TOWNSHIP, fresh.offered(ActionKind.DISPUTE_ESCALATE).escalateTo)
    assertEquals("上报", fresh.offered(ActionKind.DISPUTE_ESCALATE).labelZh)
    assertTrue(fresh.offered(ActionKind.EDIT).allowed, "the author edits their own dispute")
}

/**
 * A dispute found by a grid manager goes up from the village to the
 * township and the county. On the way his phone and the village leader's
 * record conflicting steps offline (he resolves it on the spot, she
 * escalates it); after a sync both phones show the conflict with both
 * sides' content, and she settles it by keeping the escalation, the only
 * side she may keep. Steps the user may not take are refused with
 * `NotAllowed` before anything is saved.
 */
suspend fun Ctx.aDisputeGoesUpItsLevels() {
    val gm = phone("gm", "gm-t02-v01-g1")
    val leader = phone("leader", "vl-t02-v01")
    val chief = phone("chief", "tc-t02-1")
    val county = phone("county", "county-admin")
    suspend fun syncAll(vararg phones: GridCore) = phones.forEach { it.syncClean() }

    // Village level: found by the grid manager, classified and planned by the leader.
    val id = gm.createRecord(null, disputeInput(nowMs())).id
    gm.appendDisputeEvent(id, DisputeAction.Found(note = "入户排查发现"))
    // Setting a plan is the village leader's step, not a grid manager's.
    val notHis = assertFailsWith<ApiException.NotAllowed> {
        gm.appendDisputeEvent(id, DisputeAction.PlanSet(plan = "组织双方调解", team = listOf("村调委会")))
    }
    assertEquals("forbidden", notHis.reason)
    assertContains(notHis.messageZh, "制定化解方案")
    assertEquals(1, gm.getRecord(id).dispute.events.size, "nothing saved")
    syncAll(gm, leader)
    leader.appendDisputeEvent(id, DisputeAction.Classified(category = DisputeCategory.NEIGHBOUR, note = "实为邻里纠纷"))
    var rec = leader.appendDisputeEvent(id, DisputeAction.PlanSet(plan = "组织双方调解", team = listOf("村调委会", "网格员")))
    assertEquals(RecordStatus.IN_PROGRESS, rec.status)
    syncAll(leader, gm)
    assertEquals(rec.dispute, gm.getRecord(id).dispute)

    // Offline on both phones: he resolves it, she escalates it.
    gm.appendDisputeEvent(id, DisputeAction.Resolved(note = "双方当场和解"))
    assertEquals(RecordStatus.RESOLVED, gm.getRecord(id).status)
    leader.appendDisputeEvent(id, DisputeAction.Escalated(to = DisputeLevel.TOWNSHIP, note = "涉及宅基地，需镇上处理"))
    syncAll(gm, leader, gm)
    for (phone in listOf(gm, leader)) {
        val r = phone.getRecord(id)
        assertEquals(RecordStatus.CONFLICT, r.status)
        assertEquals("待裁定", r.statusLabelZh)
        assertTrue(r.hasConflict)
        val row = phone.all(RecordQuery(kind = RecordKind.DISPUTE)).single { it.id == id }
        assertTrue(row.hasConflict)
        assertEquals(RecordStatus.CONFLICT, row.status)
    }
    val view = leader.getRecord(id)
    val conflict = view.conflicts.single()
    assertTrue(conflict.reasonZh.contains("化解") && conflict.reasonZh.contains("上报"), conflict.reasonZh)
    val sides = listOf(conflict.a, conflict.b)
    assertEquals(
        setOf(Triple("gm-t02-v01-g1", "化解", "双方当场和解"), Triple("vl-t02-v01", "上报至乡镇", "涉及宅基地，需镇上处理")),
        sides.map { Triple(it.by, it.labelZh, it.text) }.toSet(),
    )
    assertTrue(sides.all { it.inConflict && it.byName != null }, "both sides named: $sides")
    val resolved = sides.single { it.labelZh == "化解" }
    val escalated = sides.single { it.labelZh == "上报至乡镇" }

    // Only those who handle a level settle; a leader cannot take a
    // township-level case back down by keeping the resolution.
    assertFalse(gm.getRecord(id).offered(ActionKind.DISPUTE_SETTLE).allowed)
    assertFailsWith<ApiException.NotAllowed> { gm.settleConflict(id, escalated.eventId, "以上报为准") }
    val settle = view.offered(ActionKind.DISPUTE_SETTLE)
    assertTrue(settle.allowed, "${settle.reasonZh}")
    assertEquals(listOf(escalated.eventId), settle.settleKeeps)
    assertFailsWith<ApiException.NotAllowed> { leader.settleConflict(id, resolved.eventId, "以化解为准") }
    assertEquals("keep", assertFailsWith<ApiException.InvalidInput> { leader.settleConflict(id, "not-an-event", "x") }.field)
    rec = leader.settleConflict(id, escalated.eventId, "以上报为准")
    assertEquals(RecordStatus.ESCALATED, rec.status)
    assertEquals(DisputeLevel.TOWNSHIP, rec.level)
    assertFalse(rec.hasConflict)
    assertEquals(emptyList(), rec.conflicts)
    assertEquals(listOf("双方当场和解"), rec.timeline.filter { it.overruled }.map { it.text })
    assertEquals("裁定冲突", rec.timeline.last().labelZh)
    val settled = rec.dispute.events.last()
    assertTrue(settled.parents.containsAll(listOf(resolved.eventId, escalated.eventId)), "the settlement saw both")
    syncAll(leader, gm)
    assertEquals(RecordStatus.ESCALATED, gm.getRecord(id).status)
    assertEquals(rec.timeline, gm.getRecord(id).timeline)

    // Township level: no longer the village's to plan or resolve.
    assertFalse(gm.getRecord(id).offered(ActionKind.DISPUTE_RESOLVE).allowed)
    assertFailsWith<ApiException.NotAllowed> { gm.appendDisputeEvent(id, DisputeAction.Resolved(note = "已化解")) }
    assertFailsWith<ApiException.NotAllowed> {
        leader.appendDisputeEvent(id, DisputeAction.PlanSet(plan = "村里再调解", team = emptyList()))
    }
    gm.appendDisputeEvent(id, DisputeAction.FollowUp(note = "双方情绪稳定"))
    syncAll(gm, chief)
    assertEquals(DisputeLevel.TOWNSHIP, chief.all(RecordQuery(kind = RecordKind.DISPUTE)).single { it.id == id }.level)
    chief.appendDisputeEvent(id, DisputeAction.PlanSet(plan = "司法所牵头调处", team = listOf("司法所", "国土所")))
    assertEquals(DisputeLevel.COUNTY, chief.getRecord(id).offered(ActionKind.DISPUTE_ESCALATE).escalateTo)
    rec = chief.appendDisputeEvent(id, DisputeAction.Escalated(to = DisputeLevel.COUNTY, note = "涉及林权证，报县"))
    assertEquals(DisputeLevel.COUNTY, rec.level)
    syncAll(chief, county)

    // County level: resolved by county staff; every phone agrees.
    rec = county.appendDisputeEvent(id, DisputeAction.Resolved(note = "县里确权后双方认可"))
    assertEquals(RecordStatus.RESOLVED, rec.status)
    syncAll(county, chief, leader, gm)
    for (phone in listOf(gm, leader, chief, county)) {
        val r = phone.getRecord(id)
        assertEquals(RecordStatus.RESOLVED, r.status)
        assertEquals(DisputeLevel.COUNTY, r.level)
        assertEquals(rec.dispute, r.dispute)
    }
    // The history keeps every step, the overruled resolution too.
    val history = county.getRecord(id).dispute.events
    assertEquals(10, history.size)
    assertEquals(listOf("gm-t02-v01-g1", "vl-t02-v01", "tc-t02-1", "county-admin"), history.map { it.by }.distinct())
    assertEquals("county-admin", history.last().by)
}

suspend fun Ctx.badInputNamesTheField() {
    val core = phone("phone", "gm-t01-v01-g3")
    val emptySummary = RecordInput.Dispute((disputeInput(nowMs()) as RecordInput.Dispute).v1.copy(summary = ""))
    var e = assertFailsWith<ApiException.InvalidInput> { core.createRecord(null, emptySummary) }
    assertEquals("summary", e.field)
    assertEquals("required", e.reason)
    assertContains(e.messageZh, "纠纷概要")

    val household = (fieldInputs(nowMs()).getValue(RecordKind.HOUSEHOLD) as RecordInput.Household).v1
    val badId = household.copy(members = mapOf("m1" to household.members.getValue("m1").copy(idNumber = "123")))
    e = assertFailsWith<ApiException.InvalidInput> { core.createRecord(null, RecordInput.Household(badId)) }
    assertEquals("members[m1].id_number", e.field)

    e = assertFailsWith<ApiException.InvalidInput> { core.createRecord("不是网格", fieldInputs(nowMs()).getValue(RecordKind.PATROL)) }
    assertEquals("grid", e.field)
    e = assertFailsWith<ApiException.InvalidInput> { core.getRecord("not-a-uuid") }
    assertEquals("id", e.field)
    e = assertFailsWith<ApiException.InvalidInput> { core.listRecords(RecordQuery(grid = "T01//")) }
    assertEquals("grid", e.field)
    e = assertFailsWith<ApiException.InvalidInput> { core.weeklySummary(null, "2026-11-31") }
    assertEquals("week_start", e.field)
    // Another group's grid is out of this grid manager's scope.
    val scope = assertFailsWith<ApiException.NotAllowed> {
        core.createRecord("t01/v01/g1", fieldInputs(nowMs()).getValue(RecordKind.PATROL))
    }
    assertEquals("out_of_scope", scope.reason)
    assertEquals(0uL, core.countRecords())
    assertEquals(0uL, core.pendingChanges())
}

/**
 * A sync waits on a link that takes the request and never answers (a
 * weak network). Meanwhile the grid manager saves a record: the store is
 * not held across the wait. `cancelSync` ends the sync with `Cancelled`
 * rather than after its timeouts, and so does cancelling the coroutine
 * that awaits it (the app leaving the screen). Once the link is back the
 * next sync sends everything, once.
 */
suspend fun Ctx.aSyncIsCancelled() {
    val link = Link(server.url)
    links.add(link)
    val core = GridCore.open(File(dir, "phone.db").path, newKey())
    core.enroll(link.url, server.code("gm-t06-v01-g1"), "六镇一组的手机")
    val first = core.createRecord(null, hazardInput(nowMs()))
    val heard = Heard()
    core.setListener(heard)

    link.blackHole = true
    coroutineScope {
        val syncing = async(Dispatchers.Default) { runCatching { core.sync(Progress()) } }
        link.awaitHeld(1)
        // The request is on the wire; the store is free.
        val second = withTimeout(10_000) { core.createRecord(null, hazardInput(nowMs())) }
        assertEquals(listOf(ChangeSource.LOCAL to listOf(second.id)), heard.take())
        val t0 = System.nanoTime()
        core.cancelSync()
        val result = withTimeout(10_000) { syncing.await() }
        assertTrue(result.exceptionOrNull() is ApiException.Cancelled, "$result")
        assertTrue((System.nanoTime() - t0) / 1_000_000 < 5_000, "cancelled at once, not after timeouts")
        assertEquals(2uL, core.pendingChanges(), "both records wait for the next sync")

        // The app stops waiting: cancelling the coroutine cancels the sync.
        val watched = Progress()
        val job = launch(Dispatchers.Default) { core.sync(watched) }
        link.awaitHeld(2)
        job.cancel()
        job.join()
        assertTrue(job.isCancelled)
        // The core's sync itself ends (its last log line says so) rather
        // than waiting on the link in the background.
        withTimeout(5_000) {
            while (watched.logs.lastOrNull()?.startsWith("sync failed") != true) delay(20)
        }
        assertContains(watched.logs.last(), "cancelled")
    }

    link.blackHole = false
    val stats = withTimeout(60_000) { core.sync(Progress()) }
    assertEquals(2uL, stats.recordsSent)
    assertEquals(0uL, core.pendingChanges())
    assertEquals(first.body, core.getRecord(first.id).body)
    assertEquals(WorkResult.SUCCESS, backgroundSync(core, Progress()))
    core.close()
}

/**
 * The app's listener hears the ids a local save touched and, on another
 * phone, the ids a sync brought; a phone's own records coming back are not
 * news; a revocation is heard as a wipe.
 */
suspend fun Ctx.theListenerHears() {
    val gm = phone("gm", "gm-t06-v02-g1")
    val leader = phone("leader", "vl-t06-v02")
    val (onGm, onLeader) = Heard() to Heard()
    gm.setListener(onGm)
    leader.setListener(onLeader)

    val id = gm.createRecord(null, hazardInput(nowMs())).id
    gm.appendHazardEvent(id, HazardAction.Step(note = "设置警示牌"))
    assertEquals(listOf(ChangeSource.LOCAL to listOf(id), ChangeSource.LOCAL to listOf(id)), onGm.take())
    gm.syncClean()
    assertEquals(emptyList(), onGm.take(), "its own records coming back are not news")

    val stats = leader.syncClean()
    assertTrue(id in stats.changed, "${stats.changed}")
    assertEquals(listOf(ChangeSource.SYNC to listOf(id)), onLeader.take())

    // A listener that throws is the app's bug, not a reason to fail the save.
    gm.setListener(object : RecordsListener {
        override fun recordsChanged(change: RecordsChanged) { throw IllegalStateException("the app's bug") }
    })
    gm.appendHazardEvent(id, HazardAction.Resolved(note = "已排除"))
    gm.setListener(null)
    assertEquals(RecordStatus.RESOLVED, gm.getRecord(id).status)

    server.cli("revoke-device", assertNotNull(leader.enrollment()).deviceId)
    assertFailsWith<ApiException.NotAuthorized> { leader.sync(Progress()) }
    assertEquals(listOf(ChangeSource.WIPE to emptyList<String>()), onLeader.take())
    assertEquals(0uL, leader.countRecords())
}

suspend fun Ctx.aRevokedPhoneIsWiped() {
    val core = phone("lost", "gm-t01-v02-g1")
    val info = assertNotNull(core.enrollment())
    val rec = core.createRecord(null, disputeInput(nowMs()))
    core.sync(Progress())
    core.createRecord(null, fieldInputs(nowMs()).getValue(RecordKind.VISIT))
    assertEquals(2uL, core.countRecords())

    server.cli("revoke-device", info.deviceId)
    assertEquals("revoked", server.devices().getValue(info.deviceId).second)
    val progress = Progress()
    val e = assertFailsWith<ApiException.NotAuthorized> { core.sync(progress) }
    assertTrue(e.wiped)
    assertContains(e.messageZh, "停用")
    assertTrue(progress.logs.last().startsWith("sync failed"), "${progress.logs}")
    assertEquals(WorkResult.ENROLL, backgroundSync(core, Progress()))
    assertEquals(0uL, core.countRecords())
    assertEquals(emptyList(), core.all(RecordQuery(includeDeleted = true)))
    assertEquals(0uL, core.pendingChanges())
    assertNull(core.enrollment())
    assertFailsWith<ApiException.NotFound> { core.getRecord(rec.id) }
    assertFailsWith<ApiException.NotEnrolled> { core.sync(Progress()) }
    // The unsynced visit was not deleted unoffered: it is sealed to the
    // server. A colleague's phone carrying it is refused (a lost phone's
    // clock can lie); the phone enrolled again by its own user hands it
    // over, and the server takes it (made before the revocation).
    val rescued = assertNotNull(core.rescuedBundle(), "the unsynced visit is offered")
    val carrier = phone("carrier-of-lost", "vl-t01-v02")
    assertTrue(carrier.carryRelayBundle(rescued))
    val refused = carrier.sync(Progress())
    assertEquals(1uL, refused.relayedBundles, "$refused")
    assertEquals(1uL, refused.relayRefusedChanges, "$refused")
    core.enroll(server.url, server.code("gm-t01-v02-g1"), "找回的手机")
    val stats = core.sync(Progress())
    assertEquals(1uL, stats.relayedBundles, "$stats")
    assertEquals(0uL, stats.relayRefusedChanges, "$stats")
    // Bundles go up after the records' own round: the next sync brings
    // the rescued visit back to the phone.
    core.sync(Progress())
    assertEquals(2uL, core.countRecords(), "the dispute and the rescued visit are back")
    core.forgetRescuedBundle()
    assertNull(core.rescuedBundle())
}

/**
 * A grid manager with unsynced work cannot sign out until it is synced;
 * then signing out stops the device on the server and keeps her records
 * for her next sign-in. Another user enrolling on the phone with unsynced
 * work is refused; after a sign-out, he finds none of her records.
 */
suspend fun Ctx.signingOutWaitsForUnsyncedWork() {
    val core = phone("phone", "gm-t07-v01-g1")
    val deviceId = assertNotNull(core.enrollment()).deviceId
    val id = core.createRecord(null, hazardInput(nowMs())).id
    val refused = assertFailsWith<ApiException.Unsynced> { core.signOut(false) }
    assertEquals(1uL, refused.count)
    assertContains(refused.messageZh, "请先同步")
    val takeOver = assertFailsWith<ApiException.Unsynced> { core.enroll(server.url, server.code("gm-t07-v01-g2"), "手机") }
    assertContains(takeOver.messageZh, "gm-t07-v01-g1")
    assertEquals("gm-t07-v01-g1", core.enrollment()?.userId, "still signed in as herself")

    core.syncClean()
    core.signOut(false)
    assertNull(core.enrollment())
    assertEquals("revoked", server.devices().getValue(deviceId).second, "the server stops the device")
    assertEquals(id, core.getRecord(id).id, "the records stay")
    assertFailsWith<ApiException.NotEnrolled> { core.createRecord(null, hazardInput(nowMs())) }

    core.enroll(server.url, server.code("gm-t07-v01-g1"), "手机")
    assertEquals(1uL, core.countRecords(), "her records are there when she signs in again")
    core.signOut(true)
    assertEquals(0uL, core.countRecords(), "signing out with wipe removes them")
    core.enroll(server.url, server.code("gm-t07-v01-g2"), "手机")
    assertFailsWith<ApiException.NotFound> { core.getRecord(id) }
}

/** The directory names the people and grids behind ids; labels are the dashboard's. */
suspend fun Ctx.namesAndLabels() {
    val core = phone("phone", "gm-t08-v01-g1")
    val me = assertNotNull(core.enrollment())
    assertEquals("网格管理员", me.roleLabelZh)
    assertNotNull(me.gridName)
    val dir = core.directory()
    val userIds = dir.users.map { it.id }
    assertTrue(userIds.containsAll(listOf("gm-t08-v01-g1", "vl-t08-v01")), "$userIds")
    assertFalse("gm-t08-v01-g2" in userIds, "a neighbouring group's manager is not in scope")
    val leader = dir.users.single { it.id == "vl-t08-v01" }
    assertEquals("village_leader", leader.role)
    assertTrue(dir.grids.map { it.id }.containsAll(listOf("t08", "t08/v01", "t08/v01/g1")))
    assertNotNull(dir.checkedAt)

    val rec = core.createRecord(null, hazardInput(nowMs()))
    assertEquals(me.displayName, rec.authorName)
    assertEquals(me.gridName, rec.gridName)
    assertEquals("隐患", rec.kindLabelZh)
    assertEquals("待处置", rec.statusLabelZh)
    val step = core.appendHazardEvent(rec.id, HazardAction.Step(note = "设置警示牌"))
    assertEquals(listOf(me.displayName), step.timeline.map { it.byName })
    assertEquals(listOf("报处置情况"), step.timeline.map { it.labelZh })

    val all = labels()
    fun label(group: LabelGroup, code: String) = all.single { it.group == group && it.code == code }.labelZh
    assertEquals("待裁定", label(LabelGroup.RECORD_STATUS, "dispute.conflict"))
    assertEquals("已消除", label(LabelGroup.RECORD_STATUS, "hazard.resolved"))
    assertEquals("乡镇级", label(LabelGroup.DISPUTE_LEVEL, "township"))
    assertEquals("土地山林", label(LabelGroup.DISPUTE_CATEGORY, "land"))
    assertEquals("网格长", label(LabelGroup.ROLE, "village_leader"))
    assertTrue(all.none { it.labelZh.isBlank() }, "every code has a label")
}

/** The village leader's weekly and monthly figures, from the records on her phone. */
suspend fun Ctx.figuresOnThePhone() {
    val gm = phone("gm", "gm-t09-v01-g1")
    val leader = phone("leader", "vl-t09-v01")
    for ((day, slot) in listOf(0L to PatrolSlot.MORNING, 0L to PatrolSlot.MIDDAY, 0L to PatrolSlot.EVENING, 1L to PatrolSlot.MORNING)) {
        gm.createRecord(null, patrolInput(slot, DAY0 + day * DAY + slot.ordinal * 3_600_000L))
    }
    gm.createRecord(null, RecordInput.Visit(Visit(
        target = VisitTarget.KEY_PERSON,
        subject = "重点人员回访",
        householdId = null,
        visitedAt = DAY0 + 3_600_000,
        findings = "",
        followUpNeeded = false,
    )))
    gm.createRecord(null, patrolInput(PatrolSlot.MORNING, DAY0 + 8 * DAY)) // next week's
    gm.syncClean()
    leader.syncClean()

    val weeks = leader.weeklySummariesByGroup(null, "2026-11-02")
    val g1 = weeks.single { it.grid == "t09/v01/g1" }
    assertEquals(Triple(2u, 1u, 1u), Triple(g1.patrols.morning, g1.patrols.midday, g1.patrols.evening))
    assertEquals(1u, g1.daysFullyPatrolled)
    assertEquals(1u, g1.visits.keyPerson)
    assertTrue(weeks.any { it.grid == "t09/v01/g2" }, "every group of the village")
    val village = leader.weeklySummary(null, "2026-11-02")
    assertEquals(4u, village.patrols.morning + village.patrols.midday + village.patrols.evening)
    val month = leader.monthlyFigures(null, "2026-11")
    assertEquals(5u, month.patrols.morning + month.patrols.midday + month.patrols.evening)
    assertEquals("month", assertFailsWith<ApiException.InvalidInput> { leader.monthlyFigures(null, "2026-13") }.field)
    assertFailsWith<ApiException.InvalidInput> { leader.weeklySummary("t02", "2026-11-02") }
}

suspend fun Ctx.offlineKeepsRecords() {
    val fresh = GridCore.open(File(dir, "fresh.db").path, newKey())
    val e = assertFailsWith<ApiException.Network> { fresh.enroll("http://127.0.0.1:9", "ABCD-EFGH-JKLM", "手机") }
    assertContains(e.messageZh, "注册未完成")
    assertNull(fresh.enrollment())

    val own = ownServer()
    val core = GridCore.open(File(dir, "phone.db").path, newKey())
    core.enroll(own.url, own.code("gm-t01-v04-g1"), "四村一组的手机")
    assertEquals(WorkResult.SUCCESS, backgroundSync(core, Progress()))
    val rec = core.createRecord(null, hazardInput(nowMs()))
    own.kill()
    val progress = Progress()
    assertEquals(WorkResult.RETRY, backgroundSync(core, progress))
    assertTrue(progress.logs.last().startsWith("sync failed"), "${progress.logs}")
    assertEquals(rec, core.getRecord(rec.id))
    assertTrue(core.pendingChanges() > 0uL)
    assertEquals("gm-t01-v04-g1", core.enrollment()?.userId)
}

suspend fun Ctx.aBundleCarriesRecords() {
    val core = phone("a", "gm-t01-v03-g1")
    val rec = core.createRecord(null, hazardInput(nowMs()))
    val bundle = core.exportBundle()
    val other = GridCore.open(File(dir, "b.db").path, newKey())
    val heard = Heard()
    other.setListener(heard)
    val stats = other.importBundle(bundle)
    assertEquals(1uL, stats.records)
    assertTrue(stats.changes >= 1uL)
    assertEquals(rec.body, other.getRecord(rec.id).body)
    assertEquals(listOf(ChangeSource.IMPORT to listOf(rec.id)), heard.take())
    val e = assertFailsWith<ApiException.InvalidInput> { other.importBundle("not a bundle".toByteArray()) }
    assertEquals("bundle", e.field)
}

suspend fun Ctx.aRelayBundleGoesThroughAnotherPhone() {
    val gm = phone("gm", "gm-t10-v01-g1")
    // Before its first sync the phone does not know the server's key.
    val fresh = GridCore.open(File(dir, "fresh.db").path, newKey())
    assertEquals("server_key", assertFailsWith<ApiException.InvalidInput> { fresh.exportRelayBundle() }.field)
    gm.syncClean()
    val rec = gm.createRecord(null, hazardInput(nowMs()))
    val sealed = gm.exportRelayBundle()
    assertFalse(String(sealed, Charsets.ISO_8859_1).contains("GS\u0000"), "a relay bundle is not a plain bundle")
    val carrier = phone("carrier", "sv-t10-v02")
    assertFailsWith<ApiException.InvalidInput> { carrier.importBundle(sealed) }
    assertTrue(carrier.carryRelayBundle(sealed))
    assertFalse(carrier.carryRelayBundle(sealed), "carried once")
    assertEquals(1uL, carrier.relayBacklog().bundles)
    val e = assertFailsWith<ApiException.InvalidInput> { carrier.carryRelayBundle("not sealed".toByteArray()) }
    assertEquals("bundle", e.field)
    val stats = carrier.sync(Progress())
    assertEquals(1uL, stats.relayedBundles, "$stats")
    assertEquals(0uL, stats.relayRefusedChanges)
    assertEquals(0uL, carrier.relayBacklog().bundles)
    // Stored as the grid manager's: her own sync finds it acknowledged.
    assertTrue(gm.pendingChanges() > 0uL)
    gm.syncClean()
    assertEquals(0uL, gm.pendingChanges())
    assertEquals(rec.body, gm.getRecord(rec.id).body)
}

suspend fun Ctx.aThrowingCallbackDoesNotStopASync() {
    val core = phone("phone", "gm-t01-v03-g2")
    core.createRecord(null, fieldInputs(nowMs()).getValue(RecordKind.PATROL))
    var calls = 0
    val rude = object : SyncProgress {
        override fun onProgress(stats: SyncStats) { calls++; throw IllegalStateException("the app's bug") }
        override fun onLog(message: String) { calls++; throw CallbackException.Failed("log full") }
    }
    assertEquals(1uL, core.sync(rude).recordsSent)
    assertTrue(calls >= 3, "callbacks were called ($calls)")
    assertEquals(0uL, core.pendingChanges())
}

suspend fun Ctx.repairWithNothingRefused() {
    val core = phone("phone", "gm-t01-v03-g3")
    val rec = core.createRecord(null, disputeInput(nowMs()))
    core.syncClean()
    assertNull(core.all().single().rejection)
    assertEquals(RepairReport(dropped = 0uL, replayed = 0uL, skipped = 0uL, removed = false, kept = 0uL), core.repairRecord(rec.id))
    assertEquals(rec.dispute, core.getRecord(rec.id).dispute)
    assertEquals(0uL, core.pendingChanges())
    assertEquals("id", assertFailsWith<ApiException.InvalidInput> { core.repairRecord("x") }.field)
    assertFailsWith<ApiException.NotFound> { core.repairRecord("00000000-0000-4000-8000-000000000000") }
}

/** A JPEG the core accepts: a comment segment holding `marker`, then `n` bytes of scan data. */
fun fakeJpeg(n: Int, seed: Int, marker: String): ByteArray {
    val out = java.io.ByteArrayOutputStream()
    for (b in intArrayOf(0xFF, 0xD8, 0xFF, 0xE0, 0, 7, 'J'.code, 'F'.code, 'I'.code, 'F'.code, 0)) out.write(b)
    val text = marker.toByteArray()
    for (b in intArrayOf(0xFF, 0xFE, (text.size + 2) shr 8, (text.size + 2) and 0xFF)) out.write(b)
    out.write(text)
    for (b in intArrayOf(0xFF, 0xDA, 0, 2)) out.write(b)
    for (i in 0 until n) out.write((i * 31 + seed) and 0x7F)
    out.write(0xFF)
    out.write(0xD9)
    return out.toByteArray()
}

suspend fun Ctx.photosTravelAfterTheirRecords() {
    val gm = phone("photo-gm", "gm-t01-v02-g1")
    val vl = phone("photo-vl", "vl-t01-v02")
    val hazard = gm.createRecord(null, hazardInput(nowMs()))
    val marker = "PHOTO-IN-CLEAR-7f3a"
    val photo = fakeJpeg(80_000, 1, marker)
    val thumb = fakeJpeg(3_000, 2, "thumb")
    val rec = gm.attachPhoto(hazard.id, photo, thumb, null)
    val p = rec.photos.single()
    assertEquals(photo.size.toULong(), p.size)
    assertEquals("image/jpeg", p.mime)
    assertNotNull(p.thumbnail)
    assertTrue(p.onPhone && p.uploading)
    assertEquals(2uL, gm.photoBacklog().photos)
    val db = File(dir, "photo-gm.db")
    for (f in listOf(db, File(db.path + "-wal"))) {
        if (f.exists()) assertTrue(indexOf(f.readBytes(), marker.toByteArray()) < 0, "${f.name} holds the photo in clear")
    }

    // Not a photo, or on a record that takes none: typed errors naming the field.
    var e = assertFailsWith<ApiException.InvalidInput> { gm.attachPhoto(hazard.id, "不是照片".toByteArray(), null, null) }
    assertEquals("photo", e.field)
    assertEquals("bad_type", e.reason)
    val patrol = gm.createRecord(null, patrolInput(PatrolSlot.MORNING, nowMs()))
    e = assertFailsWith<ApiException.InvalidInput> { gm.attachPhoto(patrol.id, photo, null, null) }
    assertEquals("not_allowed", e.reason)

    // Records first: nothing goes before the hazard is on the server.
    assertEquals(0uL, gm.uploadPhotos(0uL).completed)
    gm.syncClean()
    val up = gm.uploadPhotos(0uL)
    assertEquals(2uL, up.completed)
    assertEquals((photo.size + thumb.size).toULong(), up.bytesSent)
    assertEquals(0uL, gm.photoBacklog().photos)

    vl.syncClean()
    val seen = vl.getRecord(hazard.id).photos.single()
    assertFalse(seen.onPhone)
    assertTrue(photo.contentEquals(vl.fetchPhoto(hazard.id, seen.hash)))
    assertTrue(vl.getRecord(hazard.id).photos.single().onPhone)
}
