Feature: The connector satisfies the Connector port (REQ_0250)
  A connector from the factory is driven only through the ports.

  @REQ_0250 @TEST_2500
  Scenario: Name, health, lifecycle and channels as Results
    Given a broker
    And a connector "c"
    Then "c" has a non-empty name
    And "c" is Connecting
    When "c" starts
    Then "c" reaches Up
    And creating a writer and a reader on "c" returns Success
    And creating a writer with a routing that has only a filter on "c" returns a ConfigurationError
    When "c" closes
    Then "c" is Down
    And the channels of "c" refuse with ConnectorDown

  @REQ_0250 @TEST_2501
  Scenario: Channels created before start work once started
    Given a broker
    And a connector "c"
    And a reader "in" on "c" for topic "early/t" at QoS 1
    And a writer "out" on "c" to topic "early/t" at QoS 1
    When "out" sends the value "hello"
    And "c" starts
    Then "in" receives the value "hello"
