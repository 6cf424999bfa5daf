package compat;

import com.azure.core.credential.AccessToken;
import com.azure.core.credential.TokenCredential;
import com.azure.core.credential.TokenRequestContext;
import com.azure.identity.DefaultAzureCredentialBuilder;
import com.azure.identity.ManagedIdentityCredentialBuilder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Properties;

/**
 * Java driver of the compatibility matrix (test/compat/compat.test.ts): runs the real azure-identity credentials
 * against whatever managed-identity endpoint the process environment selects (exactly what the webhook injects for
 * one profile) and prints one JSON result line per variant. Input: one JSON argument, the shape every driver takes
 * (test/compat/drivers/protocol.ts).
 */
public final class Driver {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  public static void main(String[] args) throws Exception {
    JsonNode in = JSON.readTree(args[0]);
    ObjectNode versions = versions();
    for (JsonNode v : in.get("variants")) {
      ObjectNode r = run(in, v);
      r.set("versions", versions);
      System.out.println(JSON.writeValueAsString(r));
      System.out.flush();
    }
    // azure-core keeps non-daemon reactor/netty threads alive; the result lines are written, so end here.
    System.exit(0);
  }

  private static String jarVersion(String resource, String key) {
    try (InputStream s = Driver.class.getClassLoader().getResourceAsStream(resource)) {
      if (s == null) return "unknown";
      Properties p = new Properties();
      p.load(s);
      return p.getProperty(key, "unknown");
    } catch (Exception e) {
      return "unknown";
    }
  }

  private static ObjectNode versions() {
    ObjectNode v = JSON.createObjectNode();
    String identity = jarVersion("azure-identity.properties", "version");
    // Older releases carry no azure-identity.properties; their jar manifest has the version.
    if ("unknown".equals(identity) && ManagedIdentityCredentialBuilder.class.getPackage().getImplementationVersion() != null) {
      identity = ManagedIdentityCredentialBuilder.class.getPackage().getImplementationVersion();
    }
    v.put("azure-identity", identity);
    v.put("azure-core", jarVersion("azure-core.properties", "version"));
    Package msal = com.microsoft.aad.msal4j.ConfidentialClientApplication.class.getPackage();
    v.put("msal4j", msal.getImplementationVersion() != null ? msal.getImplementationVersion() : "unknown");
    v.put("java", System.getProperty("java.version"));
    return v;
  }

  private static int count(String url) throws Exception {
    HttpResponse<String> res = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5)).build(),
        HttpResponse.BodyHandlers.ofString());
    return JSON.readTree(res.body()).get("count").asInt();
  }

  private static TokenCredential credential(JsonNode v) {
    if ("default".equals(v.get("credential").asText())) {
      return new DefaultAzureCredentialBuilder().build();
    }
    ManagedIdentityCredentialBuilder b = new ManagedIdentityCredentialBuilder();
    JsonNode sel = v.get("selector");
    if (sel != null && !sel.isNull()) {
      String value = sel.get("value").asText();
      switch (sel.get("kind").asText()) {
        case "client-id": b.clientId(value); break;
        // Called by name: resourceId/objectId are absent from older releases (the version axis builds this one
        // source against each, see scripts/provision.d/22-java.sh, and runs only the client-id row there).
        case "resource-id": selectBy(b, "resourceId", value); break;
        case "object-id": selectBy(b, "objectId", value); break;
        default: throw new IllegalArgumentException("driver: unknown selector kind " + sel.get("kind"));
      }
    }
    return b.build();
  }

  private static void selectBy(ManagedIdentityCredentialBuilder b, String method, String value) {
    try {
      ManagedIdentityCredentialBuilder.class.getMethod(method, String.class).invoke(b, value);
    } catch (ReflectiveOperationException e) {
      throw new IllegalStateException("driver: this azure-identity release has no ManagedIdentityCredentialBuilder." + method, e);
    }
  }

  private static String oneLine(Throwable e) {
    StringBuilder sb = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (sb.length() > 0) sb.append(" <- caused by: ");
      sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
    }
    String s = sb.toString().replaceAll("\\s+", " ").trim();
    return s.length() > 1500 ? s.substring(0, 1500) + "…" : s;
  }

  private static ObjectNode run(JsonNode in, JsonNode v) {
    ObjectNode r = JSON.createObjectNode();
    r.put("variant", v.get("id").asText());
    String resource = in.get("resource").asText();
    String counterUrl = in.get("counterUrl").asText();
    Duration timeout = Duration.ofMillis(in.path("callTimeoutMs").asLong(15000));
    String scope = resource.endsWith("/") ? resource + ".default" : resource + "/.default";
    TokenRequestContext ctx = new TokenRequestContext().addScopes(scope);
    int before;
    try {
      before = count(counterUrl);
    } catch (Exception e) {
      r.put("status", "fail");
      r.put("error", "driver: request counter: " + oneLine(e));
      return r;
    }
    TokenCredential cred;
    AccessToken t1;
    try {
      cred = credential(v);
      t1 = cred.getToken(ctx).block(timeout);
    } catch (Throwable e) {
      r.put("status", "unsupported");
      r.put("error", oneLine(e));
      return r;
    }
    try {
      int mid = count(counterUrl);
      AccessToken t2 = cred.getToken(ctx).block(timeout);
      int after = count(counterUrl);
      String[] parts = t1.getToken().split("\\.");
      if (parts.length != 3) throw new IllegalStateException("access token is not a JWT (" + parts.length + " segments)");
      JsonNode claims = JSON.readTree(new String(Base64.getUrlDecoder().decode(parts[1]), StandardCharsets.UTF_8));
      ObjectNode o = JSON.createObjectNode();
      o.put("requests1", mid - before);
      o.put("requests2", after - mid);
      o.put("expiresOn1", t1.getExpiresAt().toEpochSecond());
      o.put("expiresOn2", t2.getExpiresAt().toEpochSecond());
      o.put("sameToken", t1.getToken().equals(t2.getToken()));
      o.put("aud", claims.path("aud").asText());
      o.put("appid", claims.path("appid").asText());
      o.put("exp", claims.path("exp").asLong());
      r.set("observed", o);
      // clientCache false: a release without a token cache in its credential; the second-call rule is then the
      // CLIs' one (same token and expiry).
      boolean clientCache = !in.path("clientCache").isBoolean() || in.path("clientCache").asBoolean();
      List<String> problems = check(resource, v.get("expectedAppId").asText(), o, clientCache);
      r.put("status", problems.isEmpty() ? "ok" : "fail");
      if (!problems.isEmpty()) r.put("error", String.join("; ", problems));
    } catch (Throwable e) {
      r.put("status", "fail");
      r.put("error", "after a first token: " + oneLine(e));
    }
    return r;
  }

  /** The matrix's acceptance rules, the same in every driver (test/compat/drivers/protocol.ts). */
  private static List<String> check(String resource, String expectedAppId, JsonNode o, boolean clientCache) {
    List<String> p = new ArrayList<>();
    long now = System.currentTimeMillis() / 1000;
    long e1 = o.get("expiresOn1").asLong();
    if (o.get("requests1").asInt() < 1) p.add("first call did not reach the endpoint under test");
    if (clientCache && o.get("requests2").asInt() != 0) {
      p.add("second call was not served from the client's cache (" + o.get("requests2").asInt() + " more token requests reached the endpoint)");
    }
    if (!o.get("sameToken").asBoolean() || e1 != o.get("expiresOn2").asLong()) p.add("second call returned a different token or expiry");
    if (e1 < now + 300) p.add("expiry " + e1 + " is not far in the future (now " + now + ")");
    if (Math.abs(e1 - o.get("exp").asLong()) > 120) p.add("expiry " + e1 + " differs from the token's exp " + o.get("exp").asLong());
    String trimmed = resource.endsWith("/") ? resource.substring(0, resource.length() - 1) : resource;
    String aud = o.get("aud").asText();
    if (!aud.equals(resource) && !aud.equals(trimmed)) p.add("aud \"" + aud + "\", expected \"" + resource + "\"");
    if (!expectedAppId.equals(o.get("appid").asText())) {
      p.add("appid \"" + o.get("appid").asText() + "\", expected \"" + expectedAppId + "\"");
    }
    return p;
  }
}
