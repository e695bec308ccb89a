package shadowtap.opensearch;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.node.ShadowtapNodes;
import org.elasticsearch.transport.netty4.Netty4Plugin;

/**
 * A single-node Elasticsearch 8.19 in this JVM, beside EmbeddedNodeEs7. Elasticsearch 8
 * no longer lets a caller pass plugin classes to Node; ShadowtapNodes does it through the
 * node's service provider. No security manager and no entitlements are installed (those
 * are set up by the Elasticsearch launcher, which is not used here); no x-pack, so no ILM
 * and no security: plain HTTP. GET / is answered by RootAnswerPlugin (see there).
 * Configuration: OPENSEARCH_HOME, OPENSEARCH_PORT,
 * OPENSEARCH_TRANSPORT_PORT (see scripts/opensearch).
 */
public final class EmbeddedNodeEs8 {
    private EmbeddedNodeEs8() {}

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    public static void main(String[] args) throws Exception {
        Path home = Paths.get(env("OPENSEARCH_HOME", "/tmp/shadowtap-es8")).toAbsolutePath();
        String port = env("OPENSEARCH_PORT", "9200");
        for (String d : new String[] {"data", "logs", "config"}) {
            Files.createDirectories(home.resolve(d));
        }
        String nodeName = env("OPENSEARCH_NODE_NAME", "shadowtap-es8");
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "shadowtap")
            .put("node.name", nodeName)
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", env("OPENSEARCH_TRANSPORT_PORT", "19300-19400"))
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("http.max_content_length", "200mb")
            .build();

        // ES 8 logs through its own facade (org.elasticsearch.logging): bind it to log4j,
        // which reads log4j2.properties from the class path
        LogConfigurator.configureESLogging();
        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, Map.of(), home.resolve("config"), () -> nodeName);
        Node node = ShadowtapNodes.create(environment, List.of(Netty4Plugin.class, RootAnswerPlugin.class));
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        }, "shadowtap-shutdown"));
        node.start();
        System.out.println("shadowtap-es8: started on 127.0.0.1:" + port + " home " + home);
        stopped.await();
    }
}
