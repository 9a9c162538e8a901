package local.frauddetection.registry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.List;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

/**
 * The registry's list of properties that may be changed at run time, empty: it stands in for the build step of
 * apicurio-common-app-components-config-index, which Maven Central does not serve (see ../../../../../../pom.xml).
 */
public class DynamicPropertiesList {
    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(List.of());
    }
}
