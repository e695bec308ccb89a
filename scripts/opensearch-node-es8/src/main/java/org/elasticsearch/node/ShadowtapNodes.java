package org.elasticsearch.node;

import java.util.Collection;

import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.plugins.ShadowtapClasspathPlugins;

/**
 * Builds an Elasticsearch 8 Node whose plugins come from the class path. Node's public
 * constructor takes a PluginsLoader that reads a distribution's modules/ directory; the
 * hook that swaps the plugins service (NodeServiceProvider, NodeConstruction) is
 * package-private, hence this class in org.elasticsearch.node.
 */
public final class ShadowtapNodes {
    private ShadowtapNodes() {}

    public static Node create(Environment env, Collection<Class<? extends Plugin>> plugins) {
        NodeServiceProvider provider = new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment e, PluginsLoader loader) {
                return new ShadowtapClasspathPlugins(e.settings(), e.configDir(), plugins);
            }
        };
        return new Node(NodeConstruction.prepareConstruction(env, ShadowtapClasspathPlugins.emptyLoader(), provider, true));
    }
}
