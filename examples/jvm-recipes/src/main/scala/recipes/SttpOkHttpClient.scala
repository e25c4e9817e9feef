package recipes

import java.net.Socket
import java.util.concurrent.ConcurrentLinkedQueue

import scala.concurrent.duration._
import scala.util.control.NonFatal

import okhttp3.OkHttpClient
import sttp.client3._
import sttp.client3.okhttp.OkHttpSyncBackend
import tcpkeepalive.{KeepAlive, KeepAliveSocketFactory}

/** The recipe's factory, recording the sockets it hands out (OkHttp asks only `createSocket()`),
  * to read them back; in an application plain `new KeepAliveSocketFactory(keepAlive)` does.
  */
final class RecordingKeepAliveSocketFactory(keepAlive: KeepAlive) extends KeepAliveSocketFactory(keepAlive) {
  val sockets = new ConcurrentLinkedQueue[Socket]()

  override def createSocket(): Socket = {
    val socket = super.createSocket()
    sockets.add(socket)
    socket
  }
}

/** sttp client 3 with its OkHttp backend, under the lab's client contract ([[Lab]]): the
  * OkHttpClient given to the backend makes its sockets with a `KeepAliveSocketFactory`.
  */
object SttpOkHttpClient {
  def run(env: java.util.Map[String, String]): Int = {
    val lab =
      try Lab.fromEnv(env)
      catch {
        case e: Lab.BadConfig =>
          println(s"sttp: ${e.getMessage}")
          return Lab.BAD_CONFIG
      }
    if (lab.writeAfterMillis >= 0) {
      println("sttp: LAB_WRITE_AFTER is not supported by this client")
      return Lab.BAD_CONFIG
    }
    val factory = Option(lab.keepAlive).map(new RecordingKeepAliveSocketFactory(_))
    val builder = new OkHttpClient.Builder()
      .readTimeout(java.time.Duration.ofMillis(lab.deadlineMillis))
      .retryOnConnectionFailure(false)
    factory.foreach(f => builder.socketFactory(f))
    val backend = OkHttpSyncBackend.usingClient(builder.build())
    try {
      val response = basicRequest
        .get(uri"${lab.url}")
        .readTimeout(lab.deadlineMillis.millis)
        .response(asByteArrayAlways)
        .send(backend)
      // Read back while OkHttp pools the connection (an HTTP/1.1 server keeps it open).
      val settings = factory.flatMap(f => Option(f.sockets.peek())).map(s => KeepAlive.inspect(s).toString)
      lab.answered(response.code.code, response.body.length.toLong, settings.orNull)
    } catch {
      case _: SttpClientException.TimeoutException => lab.deadlinePassed()
      case NonFatal(e) => lab.failed(e)
    }
  }
}
