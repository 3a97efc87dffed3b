Feature: TLS (REQ_0256)

  @REQ_0256 @TEST_0136 @broker_config
  Scenario: TLS with the broker's CA reaches Up and carries messages
    Given a broker with a TLS listener and a CA made at run time
    And a started TLS connector "c" trusting the broker's CA
    And a reader "in" on "c" for topic "tls/t" at QoS 1
    And a writer "out" on "c" to topic "tls/t" at QoS 1
    When "in" is subscribed, probed through "out"
    And "out" sends the value "secret"
    Then "in" receives the value "secret"

  @REQ_0256 @TEST_0136 @broker_config
  Scenario: An untrusted CA never reaches Up and the error names certificate verification
    Given a broker with a TLS listener and a CA made at run time
    And a TLS connector "c" trusting another CA, giving up after 1 retry
    When "c" starts
    Then "c" reaches Down with a reason about certificate verification
    And "c" was never Up
