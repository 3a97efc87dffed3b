Feature: Shared subscriptions (optional capability CAP_SHARED_SUBSCRIPTIONS)

  Shared subscriptions are an MQTT 5 feature that REQ_0257 defers, so they are no
  requirement: a connector may offer them, and says so by listing
  "shared-subscriptions" in its `capabilities`. A connector that claims them must
  deliver each message once across a share group. One that does not must refuse a
  reader with a share group (Failure(ConfigurationError)) rather than subscribe the
  filter plainly, which would hand every member every message. Neither scenario is
  evidence for a requirement; the one that does not apply is reported as such.

  The kit's embedded amqtt has no shared subscriptions, so without --broker-url the
  first scenario runs on a mosquitto the kit starts (NOT RUN, with the reason, where
  mosquitto is not installed); with --broker-url or --broker it runs on that broker,
  NOT RUN where the kit's probe finds that the broker does not split a group.

  @CAP_SHARED_SUBSCRIPTIONS @TEST_2542
  Scenario: A share group gets every message exactly once, a plain subscriber gets all
    Given the connector under test claims "shared-subscriptions"
    And a broker that supports shared subscriptions
    And a started connector "pub"
    And a started connector "member-1"
    And a started connector "member-2"
    And a started connector "watcher"
    And a reader "m1" on "member-1" for filter "plant/+/temperature" in share group "ingest" at QoS 1
    And a reader "m2" on "member-2" for filter "plant/+/temperature" in share group "ingest" at QoS 1
    And a reader "all" on "watcher" for filter "plant/+/temperature" at QoS 1
    When "pub" publishes 40 numbered messages to "plant/A/temperature"
    Then "m1" and "m2" together received each numbered message exactly once
    And "all" received each numbered message exactly once
    And every numbered message arrived with its topic "plant/A/temperature"

  @CAP_SHARED_SUBSCRIPTIONS @TEST_2544
  Scenario: A connector that does not offer shared subscriptions refuses a share group
    Given the connector under test does not claim "shared-subscriptions"
    And a broker
    And a started connector "sub"
    When "sub" is asked for a reader of filter "plant/+/temperature" in share group "ingest"
    Then the reader is refused with ConfigurationError
    And "sub" subscribed to nothing at the broker
