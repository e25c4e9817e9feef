package example

import java.io.{IOException, InterruptedIOException}
import java.net.{ConnectException, NoRouteToHostException, SocketException}
import java.time.Duration

import okhttp3.{MediaType, OkHttpClient, Request, RequestBody}
import okio.BufferedSink
import tcpkeepalive.{KeepAlive, KeepAliveSocketFactory}

/** Calls a slow HTTP server through OkHttp; with keep-alive on, every connection OkHttp opens
  * comes from a `KeepAliveSocketFactory`.
  *
  * Environment (the tcp-keepalive lab's client contract):
  *   - `LAB_URL`: what to GET (required).
  *   - `LAB_DEADLINE`: seconds; OkHttp's read timeout (default 30).
  *   - `LAB_KEEPALIVE`: `on` to use the factory with `KeepAlive.fromEnv()` (the timings come from
  *     `TCP_KEEPALIVE_IDLE`, `TCP_KEEPALIVE_INTERVAL`, `TCP_KEEPALIVE_COUNT`,
  *     `TCP_KEEPALIVE_USER_TIMEOUT`); anything else: plain OkHttp.
  *   - `LAB_WRITE_AFTER`: seconds; send a POST whose body follows the headers after that long.
  *
  * Exit codes: 0 the full answer arrived; 10 the read deadline passed; 11 the connection failed
  * (the errno name is printed); 2 bad configuration.
  */
object ScalaClient {
  val Ok = 0
  val DeadlinePassed = 10
  val ConnectionFailed = 11
  val BadConfig = 2

  def main(args: Array[String]): Unit = {
    val code = run(sys.env)
    System.out.flush()
    // OkHttp keeps non-daemon threads (connection pool, dispatcher) for a while: leave at once.
    sys.exit(code)
  }

  def run(env: Map[String, String]): Int = {
    val url = env.get("LAB_URL").filter(_.nonEmpty) match {
      case Some(u) => u
      case None =>
        println("scala-client: LAB_URL is not set")
        return BadConfig
    }
    val deadline = seconds(env, "LAB_DEADLINE", 30.0) match {
      case Right(d) => d
      case Left(message) =>
        println(s"scala-client: $message")
        return BadConfig
    }
    val writeAfter = env.get("LAB_WRITE_AFTER") match {
      case None => None
      case Some(_) =>
        seconds(env, "LAB_WRITE_AFTER", 0.0) match {
          case Right(d) => Some(d)
          case Left(message) =>
            println(s"scala-client: $message")
            return BadConfig
        }
    }

    val builder = new OkHttpClient.Builder()
      .readTimeout(deadline)
      .writeTimeout(deadline)
      .connectTimeout(Duration.ofSeconds(10))
      // One attempt: a retry on another connection would hide what happened to the first one.
      .retryOnConnectionFailure(false)

    val keepAliveOn = env.get("LAB_KEEPALIVE").contains("on")
    var mode = "keep-alive off"
    if (keepAliveOn) {
      val keepAlive =
        try KeepAlive.fromEnv().orElse(KeepAlive.defaults())
        catch {
          case e: IllegalArgumentException =>
            println(s"scala-client: ${e.getMessage}")
            return BadConfig
        }
      builder.socketFactory(new KeepAliveSocketFactory(keepAlive))
      val door = if (KeepAlive.isNativeLoaded) "native" else "fallback"
      mode = s"keep-alive on, $door, idle ${keepAlive.idle.getSeconds}s, " +
        s"interval ${keepAlive.interval.getSeconds}s, count ${keepAlive.count}"
    }
    val client = builder.build()

    val request = writeAfter match {
      case None => new Request.Builder().url(url).get().build()
      case Some(delay) => new Request.Builder().url(url).post(lateBody(delay)).build()
    }

    val started = System.nanoTime()
    def elapsed: String = f"${(System.nanoTime() - started) / 1e9}%.1f s"
    try {
      val response = client.newCall(request).execute()
      try {
        val body = response.body.string()
        if (response.isSuccessful) {
          println(s"ok: HTTP ${response.code}, ${body.length} bytes after $elapsed ($mode)")
          Ok
        } else {
          println(s"http-error: HTTP ${response.code} after $elapsed ($mode)")
          ConnectionFailed
        }
      } finally response.close()
    } catch {
      case e: IOException =>
        errnoName(e) match {
          case Some(name) =>
            println(s"$name: ${e.getMessage} after $elapsed ($mode)")
            ConnectionFailed
          case None if isTimeout(e) =>
            println(s"deadline: no answer within ${deadline.getSeconds} s, $elapsed ($mode)")
            DeadlinePassed
          case None =>
            println(s"EIO: ${e.getClass.getSimpleName}: ${e.getMessage} after $elapsed ($mode)")
            ConnectionFailed
        }
    }
  }

  /** A request body whose bytes go out `delay` after the headers (the black-hole scenario). */
  private def lateBody(delay: Duration): RequestBody = new RequestBody {
    private val payload = "x" * 64
    override def contentType(): MediaType = MediaType.get("text/plain")
    override def contentLength(): Long = payload.length.toLong
    override def writeTo(sink: BufferedSink): Unit = {
      sink.flush() // the headers leave now
      Thread.sleep(delay.toMillis)
      sink.writeUtf8(payload)
      sink.flush()
    }
  }

  /** Seconds (fractions allowed) from the environment, as a Duration of at least 1 ms. */
  private def seconds(env: Map[String, String], name: String, default: Double): Either[String, Duration] =
    env.get(name) match {
      case None => Right(Duration.ofMillis((default * 1000).round))
      case Some(text) =>
        text.trim.toDoubleOption match {
          case Some(s) if s >= 0 && s <= 86400 => Right(Duration.ofMillis(math.max(1L, (s * 1000).round)))
          case _ => Left(s"$name=$text is not a number of seconds between 0 and 86400")
        }
    }

  private def isTimeout(e: Throwable): Boolean =
    causes(e).exists(_.isInstanceOf[InterruptedIOException])

  private def causes(e: Throwable): List[Throwable] =
    Iterator.iterate(e)(_.getCause).takeWhile(_ != null).take(10).toList

  /** The errno behind a JDK socket exception, from the OS text the JDK copies into it. */
  private def errnoName(e: Throwable): Option[String] = {
    val known = List(
      "connection timed out" -> "ETIMEDOUT",
      "connect timed out" -> "ETIMEDOUT",
      "connection reset" -> "ECONNRESET",
      "connection refused" -> "ECONNREFUSED",
      "no route to host" -> "EHOSTUNREACH",
      "network is unreachable" -> "ENETUNREACH",
      "broken pipe" -> "EPIPE",
      "host is down" -> "EHOSTDOWN"
    )
    val fromText = causes(e).iterator.flatMap { c =>
      val text = Option(c.getMessage).getOrElse("").toLowerCase
      known.collectFirst { case (fragment, name) if text.contains(fragment) => name }
    }.nextOption()
    fromText.orElse(causes(e).collectFirst {
      case _: ConnectException => "ECONNREFUSED"
      case _: NoRouteToHostException => "EHOSTUNREACH"
      case _: SocketException if !isTimeout(e) => "EIO"
    })
  }
}
