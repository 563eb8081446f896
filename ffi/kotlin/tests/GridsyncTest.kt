// The phone core driven from Kotlin through the generated bindings (the
// same file an Android app compiles), against the library built for the
// host and a real gridsync-server: what a field worker's phone does, and
// the typed errors an app acts on. Run by ffi/tests/kotlin.rs.
package org.gridsync.test

import java.io.File
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.gridsync.core.*

val ALL_TESTS = listOf(
    Test("a key must be 32 bytes") { aKeyMustBe32Bytes() },
    Test("records of every field kind sync and reach who may see them") { recordsSyncAndReachWhoMaySeeThem() },
    Test("supervision records are written by the roles they belong to") { supervisionRecords() },
    Test("a dispute goes up its levels and a conflict is settled") { aDisputeGoesUpItsLevels() },
    Test("bad input names the field") { badInputNamesTheField() },
    Test("a revoked phone is refused and wiped") { aRevokedPhoneIsWiped() },
    Test("with the server gone a sync fails with Network and the records stay") { offlineKeepsRecords() },
    Test("a bundle carries records to another phone") { aBundleCarriesRecords() },
    Test("a progress callback that throws does not stop a sync") { aThrowingCallbackDoesNotStopASync() },
    Test("repairing a record nothing was refused for changes nothing") { repairWithNothingRefused() },
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
} catch (e: ApiException.NotAuthorized) {
    WorkResult.ENROLL // e.wiped: the device was revoked and the store is now empty
} catch (e: ApiException.NotEnrolled) {
    WorkResult.ENROLL
}

/** A distinctive string that must never appear in the store file in clear. */
const val SECRET_TEXT = "山体滑坡"

/** One body of each of the five field record kinds. */
fun fieldBodies(now: Long): Map<RecordKind, RecordBody> = linkedMapOf(
    RecordKind.PATROL to RecordBody.Patrol(Patrol(
        slot = PatrolSlot.MORNING,
        startedAt = now - 3_600_000,
        endedAt = now,
        route = listOf(GeoPoint(lat = 33.91, lon = 106.30), GeoPoint(lat = 33.92, lon = 106.31)),
        findings = "沿河堤巡查一遍",
        hazardIds = emptyList(),
    )),
    RecordKind.HAZARD to RecordBody.Hazard(Hazard(
        category = HazardCategory.GEOLOGICAL,
        location = Location(text = "后山三组上方", gps = GeoPoint(lat = 33.9, lon = 106.3)),
        description = "${SECRET_TEXT}隐患，坡面有裂缝",
        events = emptyList(),
    )),
    RecordKind.VISIT to RecordBody.Visit(Visit(
        target = VisitTarget.FLOATING_POPULATION,
        subject = "出租房租户赵五",
        householdId = null,
        visitedAt = now,
        findings = "登记在册",
        followUpNeeded = true,
    )),
    RecordKind.HOUSEHOLD to RecordBody.Household(Household(
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
    RecordKind.DISPUTE to RecordBody.Dispute(Dispute(
        parties = listOf("李甲", "李乙"),
        category = DisputeCategory.LAND,
        summary = "${SECRET_TEXT}后两户地界纠纷",
        foundAt = now,
        events = emptyList(),
    )),
)

fun disputeBody(now: Long) = fieldBodies(now)[RecordKind.DISPUTE]!!

val Record.dispute: Dispute get() = (body as RecordBody.Dispute).value

fun actionName(a: DisputeAction): String = when (a) {
    is DisputeAction.Found -> "found"
    is DisputeAction.Classified -> "classified"
    is DisputeAction.PlanSet -> "plan_set"
    is DisputeAction.FollowUp -> "follow_up"
    is DisputeAction.Stabilized -> "stabilized"
    is DisputeAction.Escalated -> "escalated"
    is DisputeAction.Resolved -> "resolved"
    is DisputeAction.Settled -> "settled"
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

suspend fun Ctx.aKeyMustBe32Bytes() {
    val e = assertFailsWith<ApiException.InvalidInput> {
        GridCore.open(File(dir, "s.db").path, ByteArray(5))
    }
    assertEquals("key", e.field)
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
    assertFailsWith<ApiException.NotEnrolled> { core.createRecord(null, fieldBodies(nowMs())[RecordKind.PATROL]!!) }
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
    for ((kind, body) in fieldBodies(now)) {
        val rec = core.createRecord(null, body)
        assertEquals(kind, rec.kind)
        assertEquals("t01/v01/g1", rec.grid)
        assertEquals("gm-t01-v01-g1", rec.author)
        created[kind] = rec
    }
    val disputeId = created.getValue(RecordKind.DISPUTE).id
    val hazardId = created.getValue(RecordKind.HAZARD).id
    assertEquals("registered", created.getValue(RecordKind.DISPUTE).status)
    core.appendDisputeEvent(disputeId, DisputeAction.Found(note = "排查发现"))
    var rec = core.appendDisputeEvent(disputeId, DisputeAction.FollowUp(note = "约双方到村委会"))
    assertEquals(
        listOf(DisputeAction.Found(note = "排查发现"), DisputeAction.FollowUp(note = "约双方到村委会")),
        rec.dispute.events.map { it.action },
    )
    assertEquals(listOf(rec.dispute.events[0].id), rec.dispute.events[1].parents)
    assertEquals("in_progress", rec.status)
    assertEquals(DisputeLevel.VILLAGE, rec.level)
    rec = core.appendHazardEvent(hazardId, HazardAction.Step(note = "设置警示牌"))
    assertEquals("handling", rec.status)
    assertFailsWith<ApiException.InvalidInput> { core.appendHazardEvent(disputeId, HazardAction.Step(note = "x")) }

    val visit = created.getValue(RecordKind.VISIT)
    val changed = (visit.body as RecordBody.Visit).value.copy(findings = "已复查，情况正常", followUpNeeded = false)
    rec = core.updateRecord(visit.id, RecordBody.Visit(changed))
    assertEquals("done", rec.status)
    assertEquals("已复查，情况正常", (rec.body as RecordBody.Visit).value.findings)

    val extra = core.createRecord(null, fieldBodies(now)[RecordKind.PATROL]!!)
    core.deleteRecord(extra.id)
    assertTrue(core.getRecord(extra.id).deleted)
    assertFailsWith<ApiException.NotFound> { core.getRecord("00000000-0000-4000-8000-000000000000") }

    // Lists: kind, status, grid subtree, date range, search, deleted, paging.
    assertEquals(5, core.listRecords(ListFilter()).size)
    assertEquals(6, core.listRecords(ListFilter(includeDeleted = true)).size)
    assertEquals(listOf(disputeId), core.listRecords(ListFilter(kind = RecordKind.DISPUTE)).map { it.id })
    assertEquals(
        listOf(created.getValue(RecordKind.HOUSEHOLD).title),
        core.listRecords(ListFilter(search = "王小河")).map { it.title },
    )
    assertEquals(listOf(hazardId), core.listRecords(ListFilter(status = "handling")).map { it.id })
    assertEquals(5, core.listRecords(ListFilter(grid = "t01/v01")).size)
    assertEquals(emptyList(), core.listRecords(ListFilter(grid = "t01/v02")))
    // Only the patrol (started an hour ago) occurred before now.
    assertEquals(listOf(RecordKind.PATROL), core.listRecords(ListFilter(untilMs = now - 1000)).map { it.kind })
    assertEquals(4, core.listRecords(ListFilter(fromMs = now - 1000)).size)
    val pages = listOf(0u, 2u, 4u).map { core.listRecords(ListFilter(limit = 2u, offset = it)) }
    assertEquals(listOf(2, 2, 1), pages.map { it.size })
    assertEquals(core.listRecords(ListFilter()).map { it.id }, pages.flatten().map { it.id })
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

    // The village leader's phone receives every record of the village.
    val leader = phone("leader", "vl-t01-v01")
    assertTrue(leader.sync(Progress()).recordsReceived >= 5uL)
    val ids = leader.listRecords(ListFilter()).map { it.id }.toSet()
    assertTrue(ids.containsAll(created.values.map { it.id }))
    assertEquals(before[RecordKind.DISPUTE], leader.getRecord(disputeId))
    val household = leader.getRecord(created.getValue(RecordKind.HOUSEHOLD).id).body as RecordBody.Household
    assertEquals("王小河", household.value.members.getValue("m1").name)

    // A grid manager of another group receives none of them.
    val other = phone("other", "gm-t01-v01-g2")
    other.sync(Progress())
    val otherIds = other.listRecords(ListFilter(includeDeleted = true)).map { it.id }.toSet()
    assertTrue(otherIds.intersect(created.values.map { it.id }.toSet()).isEmpty())

    // The wrong key does not open the store.
    core.close()
    assertFailsWith<ApiException.WrongKey> { GridCore.open(db.path, newKey()) }
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

    val dispute = gm.createRecord(null, disputeBody(now))
    gm.sync(Progress())
    leader.sync(Progress())

    val meetingBody = RecordBody.VillageMeeting(VillageMeeting(
        heldAt = now,
        attendees = listOf("村支书", "三组网格员"),
        gridSummaries = mapOf("t03/v01/g1" to GridWeekNote(figures = mapOf("patrols" to 12L), note = "一组本周巡查正常")),
        disputesReviewed = listOf(dispute.id),
        decisions = "地界纠纷下周召集双方调解",
    ))
    val meeting = leader.createRecord(null, meetingBody)
    assertEquals(RecordKind.VILLAGE_MEETING, meeting.kind)
    assertEquals("t03/v01", meeting.grid)
    assertEquals("held", meeting.status)
    // A grid manager may not hold the village's meeting.
    assertFailsWith<ApiException.NotAllowed> { gm.createRecord("t03/v01", meetingBody) }
    // A group of another village is not this meeting's to note.
    val wrongGroup = assertFailsWith<ApiException.InvalidInput> {
        leader.createRecord(null, RecordBody.VillageMeeting(meetingBody.value.copy(
            gridSummaries = mapOf("t03/v02/g1" to GridWeekNote(figures = emptyMap(), note = "")),
        )))
    }
    assertEquals("grid_summaries[t03/v02/g1]", wrongGroup.field)

    val review = chief.createRecord(null, RecordBody.TownshipReview(TownshipReview(
        month = "2025-05",
        heldAt = now,
        attendees = listOf("镇长", "综治办主任"),
        disputesReviewed = listOf(dispute.id),
        decisions = "土地纠纷由司法所牵头",
    )))
    assertEquals(RecordKind.TOWNSHIP_REVIEW, review.kind)
    assertEquals("t03", review.grid)
    val draft = MonthlyReport(month = "2025-05", figures = mapOf("disputes" to 1L), narrative = "本月排查纠纷一起", submittedAt = null)
    var report = chief.createRecord(null, RecordBody.MonthlyReport(draft))
    assertEquals("draft", report.status)
    report = chief.updateRecord(report.id, RecordBody.MonthlyReport(draft.copy(submittedAt = nowMs())))
    assertEquals("submitted", report.status)
    val final = assertFailsWith<ApiException.NotAllowed> {
        chief.updateRecord(report.id, RecordBody.MonthlyReport(draft.copy(narrative = "改写", submittedAt = nowMs())))
    }
    assertEquals("submitted_at", final.field)
    assertFailsWith<ApiException.NotAllowed> { gm.createRecord("t03", RecordBody.MonthlyReport(draft)) }

    assertEquals(emptyList(), leader.sync(Progress()).rejected)
    assertEquals(emptyList(), chief.sync(Progress()).rejected)
    val onChief = chief.listRecords(ListFilter(kind = RecordKind.VILLAGE_MEETING)).map { it.id }
    assertEquals(listOf(meeting.id), onChief)
    assertEquals(meeting, chief.getRecord(meeting.id))
    val submitted = chief.listRecords(ListFilter(kind = RecordKind.MONTHLY_REPORT)).single()
    assertEquals("submitted", submitted.status)
    assertNull(submitted.rejection)
    // Owned by the village and the township, not a group: not on the grid manager's phone.
    gm.sync(Progress())
    assertEquals(listOf(dispute.id), gm.listRecords(ListFilter()).map { it.id })
}

/**
 * A dispute found by a grid manager goes up from the village to the
 * township and the county. On the way his phone and the village leader's
 * record conflicting steps offline (he resolves it on the spot, she
 * escalates it); after a sync both phones show the conflict, and she
 * settles it by keeping the escalation. Steps the user may not take are
 * refused with `NotAllowed` before anything is saved.
 */
suspend fun Ctx.aDisputeGoesUpItsLevels() {
    val gm = phone("gm", "gm-t02-v01-g1")
    val leader = phone("leader", "vl-t02-v01")
    val chief = phone("chief", "tc-t02-1")
    val county = phone("county", "county-admin")
    suspend fun syncAll(vararg phones: GridCore) = phones.forEach {
        assertEquals(emptyList(), it.sync(Progress()).rejected)
    }

    // Village level: found by the grid manager, classified and planned by the leader.
    val created = gm.createRecord(null, disputeBody(nowMs()))
    val id = created.id
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
    assertEquals("in_progress", rec.status)
    syncAll(leader, gm)
    assertEquals(rec, gm.getRecord(id))

    // Offline on both phones: he resolves it, she escalates it.
    gm.appendDisputeEvent(id, DisputeAction.Resolved(note = "双方当场和解"))
    assertEquals("resolved", gm.getRecord(id).status)
    leader.appendDisputeEvent(id, DisputeAction.Escalated(to = DisputeLevel.TOWNSHIP, note = "涉及宅基地，需镇上处理"))
    syncAll(gm, leader, gm)
    for (phone in listOf(gm, leader)) {
        val r = phone.getRecord(id)
        assertEquals("conflict", r.status)
        assertTrue(r.hasConflict)
        val row = phone.listRecords(ListFilter(kind = RecordKind.DISPUTE)).single { it.id == id }
        assertTrue(row.hasConflict)
        assertEquals("conflict", row.status)
    }
    val events = leader.getRecord(id).dispute.events
    val resolved = events.single { it.action is DisputeAction.Resolved }
    val escalated = events.single { it.action is DisputeAction.Escalated }

    // Only those who handle a level settle; a leader cannot take a
    // township-level case back down by keeping the resolution.
    assertFailsWith<ApiException.NotAllowed> {
        gm.appendDisputeEvent(id, DisputeAction.Settled(kept = escalated.id, note = "以上报为准"))
    }
    assertFailsWith<ApiException.NotAllowed> {
        leader.appendDisputeEvent(id, DisputeAction.Settled(kept = resolved.id, note = "以化解为准"))
    }
    rec = leader.appendDisputeEvent(id, DisputeAction.Settled(kept = escalated.id, note = "以上报为准"))
    assertEquals("escalated", rec.status)
    assertEquals(DisputeLevel.TOWNSHIP, rec.level)
    assertFalse(rec.hasConflict)
    val settled = rec.dispute.events.last()
    assertTrue(settled.parents.containsAll(listOf(resolved.id, escalated.id)), "the settlement saw both")
    syncAll(leader, gm)
    assertEquals("escalated", gm.getRecord(id).status)

    // Township level: no longer the village's to plan or resolve.
    assertFailsWith<ApiException.NotAllowed> { gm.appendDisputeEvent(id, DisputeAction.Resolved(note = "已化解")) }
    assertFailsWith<ApiException.NotAllowed> {
        leader.appendDisputeEvent(id, DisputeAction.PlanSet(plan = "村里再调解", team = emptyList()))
    }
    gm.appendDisputeEvent(id, DisputeAction.FollowUp(note = "双方情绪稳定"))
    syncAll(gm, chief)
    assertEquals(DisputeLevel.TOWNSHIP, chief.listRecords(ListFilter(kind = RecordKind.DISPUTE)).single { it.id == id }.level)
    chief.appendDisputeEvent(id, DisputeAction.PlanSet(plan = "司法所牵头调处", team = listOf("司法所", "国土所")))
    rec = chief.appendDisputeEvent(id, DisputeAction.Escalated(to = DisputeLevel.COUNTY, note = "涉及林权证，报县"))
    assertEquals(DisputeLevel.COUNTY, rec.level)
    syncAll(chief, county)

    // County level: resolved by county staff; every phone agrees.
    rec = county.appendDisputeEvent(id, DisputeAction.Resolved(note = "县里确权后双方认可"))
    assertEquals("resolved", rec.status)
    syncAll(county, chief, leader, gm)
    for (phone in listOf(gm, leader, chief, county)) {
        val r = phone.getRecord(id)
        assertEquals("resolved", r.status)
        assertEquals(DisputeLevel.COUNTY, r.level)
        assertEquals(rec.dispute, r.dispute)
    }
    // The history keeps every step, the overruled resolution too (the two
    // concurrent steps may be listed in either order).
    val history = county.getRecord(id).dispute.events
    assertEquals(
        listOf("found", "classified", "plan_set", "resolved", "escalated", "settled", "follow_up", "plan_set", "escalated", "resolved").sorted(),
        history.map { actionName(it.action) }.sorted(),
    )
    assertEquals(listOf("gm-t02-v01-g1", "vl-t02-v01", "tc-t02-1", "county-admin"), history.map { it.by }.distinct())
    assertEquals("county-admin", history.last().by)
}

suspend fun Ctx.badInputNamesTheField() {
    val core = phone("phone", "gm-t01-v01-g3")
    val emptySummary = RecordBody.Dispute((disputeBody(nowMs()) as RecordBody.Dispute).value.copy(summary = ""))
    var e = assertFailsWith<ApiException.InvalidInput> { core.createRecord(null, emptySummary) }
    assertEquals("summary", e.field)
    assertEquals("required", e.reason)
    assertContains(e.messageZh, "纠纷概要")

    val household = (fieldBodies(nowMs())[RecordKind.HOUSEHOLD] as RecordBody.Household).value
    val badId = household.copy(members = mapOf("m1" to household.members.getValue("m1").copy(idNumber = "123")))
    e = assertFailsWith<ApiException.InvalidInput> { core.createRecord(null, RecordBody.Household(badId)) }
    assertEquals("members[m1].id_number", e.field)

    e = assertFailsWith<ApiException.InvalidInput> { core.createRecord("不是网格", fieldBodies(nowMs())[RecordKind.PATROL]!!) }
    assertEquals("grid", e.field)
    e = assertFailsWith<ApiException.InvalidInput> { core.getRecord("not-a-uuid") }
    assertEquals("id", e.field)
    e = assertFailsWith<ApiException.InvalidInput> { core.listRecords(ListFilter(grid = "T01//")) }
    assertEquals("grid", e.field)
    // Another group's grid is out of this grid manager's scope.
    val scope = assertFailsWith<ApiException.NotAllowed> {
        core.createRecord("t01/v01/g1", fieldBodies(nowMs())[RecordKind.PATROL]!!)
    }
    assertEquals("out_of_scope", scope.reason)
    assertEquals(0uL, core.countRecords())
    assertEquals(0uL, core.pendingChanges())
}

suspend fun Ctx.aRevokedPhoneIsWiped() {
    val core = phone("lost", "gm-t01-v02-g1")
    val info = assertNotNull(core.enrollment())
    val rec = core.createRecord(null, disputeBody(nowMs()))
    core.sync(Progress())
    core.createRecord(null, fieldBodies(nowMs())[RecordKind.VISIT]!!)
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
    assertEquals(emptyList(), core.listRecords(ListFilter(includeDeleted = true)))
    assertEquals(0uL, core.pendingChanges())
    assertNull(core.enrollment())
    assertFailsWith<ApiException.NotFound> { core.getRecord(rec.id) }
    assertFailsWith<ApiException.NotEnrolled> { core.sync(Progress()) }
}

suspend fun Ctx.offlineKeepsRecords() {
    val fresh = GridCore.open(File(dir, "fresh.db").path, newKey())
    assertFailsWith<ApiException.Network> { fresh.enroll("http://127.0.0.1:9", "ABCD-EFGH-JKLM", "手机") }
    assertNull(fresh.enrollment())

    val own = ownServer()
    val core = GridCore.open(File(dir, "phone.db").path, newKey())
    core.enroll(own.url, own.code("gm-t01-v04-g1"), "四村一组的手机")
    assertEquals(WorkResult.SUCCESS, backgroundSync(core, Progress()))
    val rec = core.createRecord(null, fieldBodies(nowMs())[RecordKind.HAZARD]!!)
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
    val rec = core.createRecord(null, fieldBodies(nowMs())[RecordKind.HAZARD]!!)
    val bundle = core.exportBundle()
    val other = GridCore.open(File(dir, "b.db").path, newKey())
    val stats = other.importBundle(bundle)
    assertEquals(1uL, stats.records)
    assertTrue(stats.changes >= 1uL)
    assertEquals(rec, other.getRecord(rec.id))
    val e = assertFailsWith<ApiException.InvalidInput> { other.importBundle("not a bundle".toByteArray()) }
    assertEquals("bundle", e.field)
}

suspend fun Ctx.aThrowingCallbackDoesNotStopASync() {
    val core = phone("phone", "gm-t01-v03-g2")
    core.createRecord(null, fieldBodies(nowMs())[RecordKind.PATROL]!!)
    var calls = 0
    val rude = object : SyncProgress {
        override fun onProgress(stats: SyncStats) { calls++; throw IllegalStateException("the app's bug") }
        override fun onLog(message: String) { calls++; throw ApiException.Storage("log full", "日志已满") }
    }
    assertEquals(1uL, core.sync(rude).recordsSent)
    assertTrue(calls >= 3, "callbacks were called ($calls)")
    assertEquals(0uL, core.pendingChanges())
}

suspend fun Ctx.repairWithNothingRefused() {
    val core = phone("phone", "gm-t01-v03-g3")
    val rec = core.createRecord(null, disputeBody(nowMs()))
    core.sync(Progress())
    assertNull(core.listRecords(ListFilter()).single().rejection)
    assertEquals(RepairStats(dropped = 0uL, replayed = 0uL, skipped = 0uL, removed = false), core.repairRecord(rec.id))
    assertEquals(rec.dispute, core.getRecord(rec.id).dispute)
    assertEquals(0uL, core.pendingChanges())
    assertEquals("id", assertFailsWith<ApiException.InvalidInput> { core.repairRecord("x") }.field)
}
