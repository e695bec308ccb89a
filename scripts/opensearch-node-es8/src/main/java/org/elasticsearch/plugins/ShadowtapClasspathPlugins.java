package org.elasticsearch.plugins;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.elasticsearch.common.settings.Settings;

/**
 * The plugins of the shadowtap ES 8 node, instantiated from the class path. A real
 * Elasticsearch 8 loads modules from a distribution's modules/ directory into module
 * layers of their own; a Maven class path has no such directory, so this service starts
 * from an empty loader and hands out the given plugin classes instead. It lives in this
 * package because PluginsService.LoadedPlugin is package-private.
 */
public final class ShadowtapClasspathPlugins extends PluginsService {
    private final List<LoadedPlugin> loaded;

    public ShadowtapClasspathPlugins(Settings settings, Path configDir, Collection<Class<? extends Plugin>> classes) {
        super(settings, configDir, emptyLoader());
        List<LoadedPlugin> list = new ArrayList<>();
        for (Class<? extends Plugin> c : classes) {
            PluginDescriptor d = new PluginDescriptor(c.getName(), "class path plugin (shadowtap)", "NA",
                org.elasticsearch.Build.current().version(), Integer.toString(Runtime.version().feature()),
                c.getName(), null, List.of(), false, false, false, false);
            list.add(new LoadedPlugin(d, loadPlugin(c, settings, configDir), c.getClassLoader()));
        }
        loaded = List.copyOf(list);
    }

    public static PluginsLoader emptyLoader() {
        return PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false);
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return loaded;
    }
}
