package shadowtap.opensearch;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.transport.Netty4Plugin;

/**
 * A single-node Elasticsearch 7.17 in this JVM, the twin of EmbeddedNode (OpenSearch):
 * OpenSearch forked from Elasticsearch 7.10, so the embedding is the same, under the
 * org.elasticsearch names. Configuration: OPENSEARCH_HOME, OPENSEARCH_PORT,
 * OPENSEARCH_TRANSPORT_PORT (see scripts/opensearch).
 */
public final class EmbeddedNodeEs7 extends Node {
    private EmbeddedNodeEs7(Environment env, Collection<Class<? extends Plugin>> plugins) {
        super(env, plugins, true);
    }

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    public static void main(String[] args) throws Exception {
        Path home = Paths.get(env("OPENSEARCH_HOME", "/tmp/shadowtap-es7")).toAbsolutePath();
        String port = env("OPENSEARCH_PORT", "9200");
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.createDirectories(home.resolve("config"));

        String nodeName = env("OPENSEARCH_NODE_NAME", "shadowtap-es7");
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

        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, java.util.Collections.emptyMap(), home.resolve("config"), () -> nodeName);
        EmbeddedNodeEs7 node = new EmbeddedNodeEs7(environment, List.of(Netty4Plugin.class));
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
        System.out.println("shadowtap-es7: started on 127.0.0.1:" + port + " home " + home);
        stopped.await();
    }
}
