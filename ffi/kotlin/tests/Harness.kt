// The plain-Kotlin test runner for the Gridsync bindings: no JUnit, no
// Gradle, only what ships with the Kotlin compiler (kotlin-stdlib,
// kotlin-test's assertions, kotlinx-coroutines) and JNA.
//
// ffi/tests/kotlin.rs compiles this directory together with the generated
// bindings (org/gridsync/core/gridsync_core.kt, the core's types, and
// org/gridsync/ffi/gridsync_ffi.kt, GridCore) and runs `org.gridsync.test.HarnessKt`
// with the library it built and a gridsync-server it started. Environment:
//
//   GRIDSYNC_SERVER_URL       where the server listens (loopback)
//   GRIDSYNC_SERVER_BIN       the gridsync-server binary, for its admin commands
//   GRIDSYNC_SERVER_DATA_DIR  the server's --data-dir
//
// Arguments: names (or parts of names) of the tests to run; none runs all.
// Exits 1 if any test failed, 2 if no test matched.
package org.gridsync.test

import java.io.File
import java.nio.file.Files
import java.security.SecureRandom
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import org.gridsync.core.*
import org.gridsync.ffi.*

/** A gridsync-server with the demo county, and its admin commands. */
class Server(
    val url: String,
    private val bin: String,
    private val dataDir: String,
    private val process: Process? = null,
) {
    /** Run `gridsync-server --data-dir … <args>` and return its stdout. */
    fun cli(vararg args: String): String {
        val proc = ProcessBuilder(listOf(bin, "--data-dir", dataDir) + args).start()
        val out = proc.inputStream.bufferedReader().readText()
        val err = proc.errorStream.bufferedReader().readText()
        check(proc.waitFor(60, TimeUnit.SECONDS)) { "gridsync-server ${args.joinToString(" ")} hung" }
        check(proc.exitValue() == 0) { "gridsync-server ${args.joinToString(" ")} failed: $err" }
        return out
    }

    /** A fresh one-time enrollment code for `user`. */
    fun code(user: String): String = cli("enroll-code", "--user", user).trim().lines().last().trim()

    /** Device id -> (user, state, last sync ms or null), from `devices`. */
    fun devices(): Map<String, Triple<String, String, Long?>> =
        cli("devices").lines().filter { it.isNotBlank() }.associate { line ->
            val (dev, user, _, state, last) = line.split("\t")
            val ms = last.substringAfter("=")
            dev to Triple(user, state, if (ms == "never") null else ms.toLong())
        }

    /** Kill a server this suite started: to a phone, the network is gone. */
    fun kill() {
        val p = checkNotNull(process) { "the harness's server is not the suite's to stop" }
        p.destroyForcibly().waitFor(30, TimeUnit.SECONDS)
    }

    companion object {
        /** The server ffi/tests/kotlin.rs started for the whole suite. */
        fun fromEnv(): Server = Server(
            System.getenv("GRIDSYNC_SERVER_URL") ?: error("GRIDSYNC_SERVER_URL is not set (run through ffi/tests/kotlin.rs)"),
            System.getenv("GRIDSYNC_SERVER_BIN") ?: error("GRIDSYNC_SERVER_BIN is not set"),
            System.getenv("GRIDSYNC_SERVER_DATA_DIR") ?: error("GRIDSYNC_SERVER_DATA_DIR is not set"),
        )

        /** Another server of the same binary, in `dataDir`, on a loopback port. */
        fun start(bin: String, dataDir: File): Server {
            val cli = Server("", bin, dataDir.path)
            cli.cli("load-tree", "--demo")
            val proc = ProcessBuilder(bin, "--data-dir", dataDir.path, "serve", "--listen", "127.0.0.1:0", "--workers", "1")
                .redirectError(File(dataDir, "server.log"))
                .start()
            val lines = proc.inputStream.bufferedReader()
            while (true) {
                val line = lines.readLine() ?: error("gridsync-server exited: ${File(dataDir, "server.log").readText()}")
                if (line.startsWith("listening on ")) {
                    // Keep draining so the server never blocks on a full pipe.
                    Thread { lines.readText() }.apply { isDaemon = true }.start()
                    return Server(line.removePrefix("listening on ").trim(), bin, dataDir.path, proc)
                }
            }
        }
    }
}

/** The app's side of the sync callback; called on one of the core's threads. */
class Progress : SyncProgress {
    val updates = CopyOnWriteArrayList<SyncStats>()
    val logs = CopyOnWriteArrayList<String>()
    override fun onProgress(stats: SyncStats) { updates.add(stats) }
    override fun onLog(message: String) { logs.add(message) }
}

private val random = SecureRandom()

/** 32 random bytes, as an app would keep in the Android Keystore. */
fun newKey(): ByteArray = ByteArray(32).also { random.nextBytes(it) }

fun nowMs(): Long = System.currentTimeMillis()

/**
 * A weak link between a phone and the server, on loopback: it relays
 * connections to `target` until `blackHole` is set; from then on it takes
 * each new connection and never answers (a request on the wire that no
 * answer comes back for). Closed after the test.
 */
class Link(target: String) {
    private val to = java.net.URI(target)
    private val socket = java.net.ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())
    private val open = CopyOnWriteArrayList<java.net.Socket>()
    private val heldCount = java.util.concurrent.atomic.AtomicInteger()
    /**
     * Set: every connection open now is cut (as when a phone's network
     * drops) and every new one is held unanswered. Cleared: new
     * connections are relayed again.
     */
    @Volatile var blackHole = false
        set(value) {
            field = value
            if (value) {
                relayed.forEach { runCatching { it.close() } }
                relayed.clear()
            }
        }
    private val relayed = CopyOnWriteArrayList<java.net.Socket>()
    val url = "http://127.0.0.1:${socket.localPort}"

    init {
        Thread {
            while (!socket.isClosed) {
                val conn = try { socket.accept() } catch (e: java.io.IOException) { break }
                open.add(conn)
                if (blackHole) {
                    heldCount.incrementAndGet()
                    continue
                }
                val up = java.net.Socket(to.host, to.port).also { open.add(it) }
                relayed.add(conn)
                relayed.add(up)
                pump(conn, up)
                pump(up, conn)
            }
        }.apply { isDaemon = true }.start()
    }

    private fun pump(from: java.net.Socket, to: java.net.Socket) {
        Thread {
            try { from.getInputStream().copyTo(to.getOutputStream()) } catch (e: java.io.IOException) {}
            try { to.shutdownOutput() } catch (e: java.io.IOException) {}
        }.apply { isDaemon = true }.start()
    }

    /** Wait until `n` connections in all have been taken and left unanswered. */
    fun awaitHeld(n: Int) {
        val deadline = System.nanoTime() + 30_000_000_000L
        while (heldCount.get() < n) {
            check(System.nanoTime() < deadline) { "no connection reached the link (${heldCount.get()} of $n)" }
            Thread.sleep(20)
        }
    }

    fun close() {
        socket.close()
        open.forEach { runCatching { it.close() } }
    }
}

/** A test's scratch directory and the shared server. */
class Ctx(val server: Server, val dir: File) {
    val ownServers = mutableListOf<Server>()
    val links = mutableListOf<Link>()

    /** A server of this test's own, which it may kill (killed after the test anyway). */
    fun ownServer(): Server = Server.start(
        System.getenv("GRIDSYNC_SERVER_BIN") ?: error("GRIDSYNC_SERVER_BIN is not set"),
        File(dir, "server-${ownServers.size}").also { it.mkdirs() },
    ).also { ownServers.add(it) }

    /** A new store at `dir/<name>.db`, enrolled as `user`. */
    suspend fun phone(name: String, user: String, key: ByteArray = newKey()): GridCore {
        val core = GridCore.open(File(dir, "$name.db").path, key)
        core.enroll(server.url, server.code(user), "$user 的手机")
        return core
    }
}

class Test(val name: String, val body: suspend Ctx.() -> Unit)

fun main(args: Array<String>) {
    val server = Server.fromEnv()
    val selected = ALL_TESTS.filter { t -> args.isEmpty() || args.any { t.name.contains(it) } }
    if (selected.isEmpty()) {
        System.err.println("no test matches ${args.toList()}")
        exitProcess(2)
    }
    val failed = mutableListOf<String>()
    val started = System.nanoTime()
    for (t in selected) {
        val dir = Files.createTempDirectory("gridsync-kt").toFile()
        val t0 = System.nanoTime()
        val ctx = Ctx(server, dir)
        try {
            runBlocking { ctx.(t.body)() }
            println("ok      ${t.name} (${ms(t0)} ms)")
        } catch (e: Throwable) {
            failed.add(t.name)
            println("FAILED  ${t.name} (${ms(t0)} ms)")
            e.printStackTrace(System.out)
        } finally {
            ctx.ownServers.forEach { it.kill() }
            ctx.links.forEach { it.close() }
            dir.deleteRecursively()
        }
    }
    val summary = "${selected.size - failed.size} passed, ${failed.size} failed in ${ms(started)} ms"
    if (failed.isEmpty()) {
        println("kotlin suite: $summary")
    } else {
        println("kotlin suite: $summary: ${failed.joinToString(", ")}")
        exitProcess(1)
    }
    // The core's runtime threads are not daemons of ours to wait for.
    exitProcess(0)
}

private fun ms(since: Long) = (System.nanoTime() - since) / 1_000_000
