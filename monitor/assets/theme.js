// Dark mode: kept per browser in the "theme" store (localStorage), applied without a server round trip.

// Assets run before Dash renders the page: a dark page starts dark instead of flashing light first.
try {
    const stored = JSON.parse(window.localStorage.getItem("theme") || "null");
    if (stored && stored.dark === true) {
        document.body.classList.add("theme-dark");
    }
} catch (e) {
    // no localStorage (or not JSON): the light theme
}
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    monitor: {
        theme: function (nClicks, stored) {
            const triggered = (dash_clientside.callback_context.triggered || []).map(t => t.prop_id);
            let dark = Boolean(stored && stored.dark === true);
            if (nClicks && triggered.includes("theme-toggle.n_clicks")) {
                dark = !dark;
            }
            document.body.classList.toggle("theme-dark", dark);
            return [{dark: dark}, dark ? "theme-dark" : "theme-light", dark ? "Light mode" : "Dark mode"];
        }
    }
});
