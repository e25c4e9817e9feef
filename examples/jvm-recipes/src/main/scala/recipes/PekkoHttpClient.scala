package recipes

import java.net.Socket
import java.util.concurrent.{ConcurrentLinkedQueue, TimeoutException}

import scala.concurrent.{Await, ExecutionContext}
import scala.concurrent.duration._
import scala.util.control.NonFatal

import com.typesafe.config.ConfigFactory
import org.apache.pekko.actor.ActorSystem
import org.apache.pekko.http.scaladsl.Http
import org.apache.pekko.http.scaladsl.model.{ContentTypes, HttpEntity, HttpMethods, HttpRequest}
import org.apache.pekko.http.scaladsl.settings.{ClientConnectionSettings, ConnectionPoolSettings}
import org.apache.pekko.io.Inet
import org.apache.pekko.stream.scaladsl.Source
import org.apache.pekko.util.ByteString
import tcpkeepalive.KeepAlive

/** The recipe: a socket option whose `afterConnect` gets the connection's socket (the NIO
  * channel's adaptor) and configures it. Pekko calls it once per new connection, before the
  * first request goes out on it. `seen` keeps what the kernel then reports for each (the
  * connection may be gone by the time the answer is in: HTTP/1.0 servers close it).
  */
final class KeepAliveSocketOption(keepAlive: KeepAlive) extends Inet.SocketOptionV2 {
  val seen = new ConcurrentLinkedQueue[String]()

  override def afterConnect(socket: Socket): Unit = {
    keepAlive.apply(socket) // a failure fails the connection: none without keep-alive
    seen.add(KeepAlive.inspect(socket).toString)
  }
}

/** Apache Pekko HTTP (Scala 2.13) under the lab's client contract ([[Lab]]). */
object PekkoHttpClient {
  def run(env: java.util.Map[String, String]): Int = {
    val lab =
      try Lab.fromEnv(env)
      catch {
        case e: Lab.BadConfig =>
          println(s"pekko: ${e.getMessage}")
          return Lab.BAD_CONFIG
      }
    val quiet = ConfigFactory.parseString(
      "pekko.loglevel = OFF\npekko.stdout-loglevel = OFF\npekko.log-dead-letters = off"
    )
    implicit val system: ActorSystem = ActorSystem("pekko-recipe", quiet.withFallback(ConfigFactory.load()))
    implicit val ec: ExecutionContext = system.dispatcher
    val deadline = lab.deadlineMillis.millis
    try {
      val option = Option(lab.keepAlive).map(new KeepAliveSocketOption(_))
      // Pekko's own idle-timeout (60 s by default) closes a connection silent for that long, a
      // long request included: it must exceed the longest wait, as the keep-alive idle must not.
      val connection = ClientConnectionSettings(system)
        .withSocketOptions(option.toList)
        .withIdleTimeout(deadline + 60.seconds)
      // No retries: a retry on a new connection would hide what happened to the first one.
      val pool = ConnectionPoolSettings(system).withConnectionSettings(connection).withMaxRetries(0)
      val request =
        if (lab.writeAfterMillis < 0) HttpRequest(uri = lab.url)
        else {
          val body = ByteString("x" * 64)
          HttpRequest(
            HttpMethods.POST,
            uri = lab.url,
            entity = HttpEntity(
              ContentTypes.`text/plain(UTF-8)`,
              body.length.toLong,
              Source.single(body).initialDelay(lab.writeAfterMillis.millis)
            )
          )
        }
      val answer = Http().singleRequest(request, settings = pool).flatMap { response =>
        response.entity.toStrict(deadline).map(entity => (response.status.intValue, entity.data.length))
      }
      // The deadline is a read timeout: it starts once the (late) body is out.
      val (status, bytes) = Await.result(answer, deadline + lab.writeAfterMillis.max(0L).millis)
      lab.answered(status, bytes.toLong, option.flatMap(o => Option(o.seen.peek())).orNull)
    } catch {
      case _: TimeoutException => lab.deadlinePassed()
      case NonFatal(e) => lab.failed(e)
    } finally {
      // Not awaited: a pool whose connection still waits for its answer (the hang) would not
      // shut down in time; the caller exits the JVM right after.
      system.terminate()
    }
  }
}
