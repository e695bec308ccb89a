package shadowtap.opensearch;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single-node OpenSearch in this JVM, for the demo and the integration tests.
 * The Node constructor that accepts classpath plugins is protected, hence the
 * subclass: without Netty4Plugin there is no HTTP or transport layer at all.
 * Configuration comes from the environment (see scripts/opensearch):
 * OPENSEARCH_HOME (data/ and logs/ under it) and OPENSEARCH_PORT (HTTP); for a node of
 * a local cluster also OPENSEARCH_NODE_NAME, OPENSEARCH_SEED_HOSTS (transport host:port
 * list) and OPENSEARCH_INITIAL_MANAGERS (node names).
 */
public final class EmbeddedNode extends Node {
    private EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
        super(env, plugins, true);
    }

    private static String env(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? dflt : v;
    }

    public static void main(String[] args) throws Exception {
        Path home = Paths.get(env("OPENSEARCH_HOME", "/tmp/shadowtap-opensearch")).toAbsolutePath();
        String port = env("OPENSEARCH_PORT", "9200");
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.createDirectories(home.resolve("config"));

        String nodeName = env("OPENSEARCH_NODE_NAME", "shadowtap-node");
        String seeds = env("OPENSEARCH_SEED_HOSTS", "");
        Settings.Builder b = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "shadowtap")
            .put("node.name", nodeName);
        if (seeds.isEmpty()) {
            b.put("discovery.type", "single-node");
        } else {
            // a cluster of several local nodes (scripts/opensearch start --nodes N)
            b.putList("discovery.seed_hosts", seeds.split(","));
            b.putList("cluster.initial_cluster_manager_nodes",
                      env("OPENSEARCH_INITIAL_MANAGERS", nodeName).split(","));
        }
        Settings settings = b
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            // keep the transport port away from a real cluster's 9300 range
            .put("transport.port", env("OPENSEARCH_TRANSPORT_PORT", "19300-19400"))
            // a full /tmp must not turn the test cluster read-only
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .put("http.max_content_length", "200mb")
            .build();

        Environment environment = InternalSettingsPreparer.prepareEnvironment(
            settings, java.util.Collections.emptyMap(), home.resolve("config"), () -> nodeName);
        EmbeddedNode node = new EmbeddedNode(environment, List.of(Netty4Plugin.class));
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
        System.out.println("shadowtap-opensearch: started on 127.0.0.1:" + port + " home " + home);
        stopped.await();
    }
}
